"""envoy/grafana/tokenmeter-dashboard.json: loads, is importable (datasource input), every
panel has PromQL that parses and names only contract metrics and labels, costs are shown in
dollars, and the key panels compute the right numbers on crafted data (promtool
promql_expr_test: no Prometheus server needed)."""

from __future__ import annotations

import subprocess

import pytest
import yaml

import contract
import dashboard_queries as dq
import promql
from conftest import promtool

TARGET_LABELS = {"instance", "job", "pod", "namespace", "istio", "proxy", "le"}


@pytest.fixture(scope="module")
def dashboard():
    return dq.load()


def test_datasource_is_an_import_input(dashboard):
    [ds] = dashboard["__inputs"]
    assert ds["name"] == "DS_PROMETHEUS" and ds["pluginId"] == "prometheus"
    for panel in dq.panels(dashboard):
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
    for var in dashboard["templating"]["list"]:
        assert var["datasource"]["uid"] == "${DS_PROMETHEUS}"


def test_every_panel_has_a_promql_target(dashboard):
    panels = dq.panels(dashboard)
    assert len(panels) >= 20
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = [p["title"] for p in panels]
    assert len(titles) == len(set(titles)), "panel titles identify queries in dashboard_queries"
    for panel in panels:
        assert panel["targets"], panel["title"]
        assert all(t.get("expr", "").strip() for t in panel["targets"]), panel["title"]


def test_every_variable_used_is_defined():
    # substitute() raises on unknown variables.
    assert len(dq.queries()) >= 30


def test_all_exprs_parse_with_promtool():
    qs = dq.queries()
    out = promql.promtool_check_exprs(promtool(), {f"{i}_{q.panel}_{q.ref_id}": q.expr for i, q in enumerate(qs)})
    assert out.returncode == 0, out.stdout + out.stderr


def test_parse_check_rejects_bad_promql():
    out = promql.promtool_check_exprs(promtool(), {"bad": "sum by (feature (rate(x[5m]))"})
    assert out.returncode != 0


def test_exprs_use_only_contract_metrics_and_labels():
    series = contract.all_series_names()
    labels = contract.label_names() | TARGET_LABELS
    for q in dq.queries():
        assert promql.metric_names(q.expr) <= series, (q.panel, promql.metric_names(q.expr) - series)
        assert promql.label_names(q.expr) <= labels, (q.panel, promql.label_names(q.expr) - labels)


def test_money_is_shown_in_dollars():
    money = [q for q in dq.queries() if "nanousd" in q.expr]
    assert len(money) >= 8
    for q in money:
        assert "/ 1e9" in q.expr, q.panel
        assert q.unit == "currencyUSD", q.panel


def test_required_views_are_present():
    exprs = [q.expr for q in dq.queries()]

    def has(*parts):
        return any(all(p in e for p in parts) for e in exprs)

    assert has("topk(10, sum by (feature)", "tokenmeter_cost_nanousd_total")
    assert has("sum by (gen_ai_request_model)", "tokenmeter_cost_nanousd_total")
    assert has("sum by (customer)", "tokenmeter_cost_nanousd_total")
    assert has('gen_ai_token_type=~"input|output"')
    assert has('gen_ai_token_type="input"', "tokenmeter_requests_total", "sum by (feature)")  # prompt growth
    assert has('gen_ai_token_type="cache_read"', 'gen_ai_token_type="input"')  # cache hit rate
    assert has("tokenmeter_retries_total", "tokenmeter_requests_total")  # retry rate
    assert has("tokenmeter_unpriced_requests_total")
    assert has("tokenmeter_usage_missing_total")


def test_variables_are_substituted_and_escaped():
    [q] = [q for q in dq.queries(variables={"feature": "a.b"}) if q.panel == "Spend in range"]
    assert 'feature=~"a\\.b"' in q.expr and "$" not in q.expr


# --- Numbers on crafted data ---

SERIES = {
    # $12/h for search, $6/h for docs (nano-USD per 5 minutes).
    'tokenmeter_cost_nanousd_total{feature="search",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o"}': "0+1000000000x12",
    'tokenmeter_cost_nanousd_total{feature="docs",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"}': "0+500000000x12",
    'tokenmeter_requests_total{feature="search",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o"}': "0+100x12",
    'tokenmeter_requests_total{feature="docs",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o-mini"}': "0+50x12",
    'tokenmeter_tokens_total{feature="search",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_token_type="input"}': "0+100000x12",
    'tokenmeter_tokens_total{feature="search",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",gen_ai_token_type="cache_read"}': "0+25000x12",
    'tokenmeter_retries_total{feature="search",customer="acme",gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o",retry_source="client"}': "0+5x12",
    'tokenmeter_unpriced_requests_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-9"}': "0+2x12",
    'tokenmeter_usage_missing_total{gen_ai_provider_name="openai",gen_ai_request_model="gpt-4o"}': "0+25x12",
    'tokenmeter_budget_utilization_ratio_permille{budget="team-a",instance="gw-1"}': "850x12",
    'tokenmeter_budget_utilization_ratio_permille{budget="team-a",instance="gw-2"}': "500x12",
}

# (panel title, refId) -> expected samples at 1h, with $__range=1h and $__rate_interval=5m.
EXPECTED = {
    ("Spend in range", "A"): [({}, 18)],
    ("Spend rate", "A"): [({}, 18)],
    ("Cost per request", "A"): [({}, 0.01)],
    ("Unpriced requests in range", "A"): [({}, 24)],
    ("Top 10 features by spend", "A"): [({"feature": "search"}, 12), ({"feature": "docs"}, 6)],
    ("Top 10 customers by spend", "A"): [({"customer": "acme"}, 18)],
    ("Spend by model", "A"): [
        ({"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}, 12),
        ({"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o-mini"}, 6),
    ],
    ("Prompt-cache hit rate by feature", "A"): [({"feature": "search"}, 0.25)],
    ("Retry rate by feature", "A"): [({"feature": "search"}, 0.05)],
    ("Cost per request by feature", "A"): [({"feature": "search"}, 0.01), ({"feature": "docs"}, 0.01)],
    ("Avg input tokens per request by feature (vs last week)", "A"): [({"feature": "search"}, 1000)],
    ("Requests with missing usage (share)", "A"): [({"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o"}, 0.25)],
    ("Budget utilisation", "A"): [({"budget": "team-a"}, 0.85)],
}


def _labels(d):
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(d.items())) + "}" if d else "{}"


def test_key_panels_compute_the_right_numbers(tmp_path):
    by_key = {(q.panel, q.ref_id): q for q in dq.queries(rate_interval="5m", range_="1h")}
    assert set(EXPECTED) <= set(by_key), set(EXPECTED) - set(by_key)
    (tmp_path / "empty.yml").write_text("groups: []\n")
    tests = {
        "rule_files": ["empty.yml"],
        "evaluation_interval": "5m",
        "tests": [{
            "interval": "5m",
            "input_series": [{"series": s, "values": v} for s, v in SERIES.items()],
            "promql_expr_test": [
                {
                    # promtool compares floats exactly; rounding keeps 0.05 from being 0.0499...
                    "expr": f"round({by_key[key].expr}, 0.000001)",
                    "eval_time": "1h",
                    "exp_samples": [{"labels": _labels(l), "value": v} for l, v in samples],
                }
                for key, samples in EXPECTED.items()
            ],
        }],
    }
    (tmp_path / "test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    out = subprocess.run([promtool(), "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
