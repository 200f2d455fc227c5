"""End-to-end: a real Prometheus scrapes the real Envoy + tokenmeter.wasm after mixed traffic
from the official SDKs, and every Grafana panel query returns data.

The stack is this module's own (Envoy with a low label cap, so that overflow shows; Prometheus
scraping Envoy's admin /stats/prometheus every second), so no other test's traffic mixes in
and the access log can be compared with the metrics request for request.

Spend agreement is checked exactly, in nano-USD: every price used here is a whole number of
nano-USD per token, so each request's `llm.cost_usd` (9 places) is exact and the per-series
counters carry no remainder. The comparison runs on the counters themselves
(`sum by (feature) (tokenmeter_cost_nanousd_total)`), because the dashboard's windowed form
(`increase(...[1h])`) is extrapolated by Prometheus and leaves out the value a series already
had at its first scrape; for that query the test checks that it shows the same features.

Skipped when the Debian `prometheus` binary is missing.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request
from decimal import Decimal

import anthropic
import openai
import pytest

from ..prometheus_server import PROMETHEUS, start_prometheus
from .harness import REPO, http_get, start_envoy, wait_until

sys.path.insert(0, str(REPO / "tests" / "manifests"))
import dashboard_queries  # noqa: E402

pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (apt-get install prometheus)")

# Label cap for this Envoy: 4 features stay below it, 8 customers and 6 models go past it.
LABEL_CAP = 5
# Budget metrics come from the `search-daily` budget the stack configures; their panels
# are checked like every other panel.
BUDGET_METRICS = ("tokenmeter_budget_utilization_ratio_permille", "tokenmeter_budget_admissions_total")


def _query(base: str, expr: str, *, instant: bool, now: float) -> dict:
    if instant:
        url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr, "time": now})
    else:
        params = {"query": expr, "start": now - 120, "end": now, "step": "1"}
        url = f"{base}/api/v1/query_range?" + urllib.parse.urlencode(params)
    return json.loads(http_get(url, timeout=10))


def _instant(base: str, expr: str) -> list[dict]:
    r = _query(base, expr, instant=True, now=time.time())
    assert r["status"] == "success", r
    return r["data"]["result"]


@pytest.fixture(scope="module")
def stack(mock, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prometheus-e2e")
    envoy = start_envoy(workdir / "envoy", mock.port,
                        plugin_config=json.dumps({
                            "metrics": {"max_label_values": LABEL_CAP},
                            # Generous, so that it admits everything: its panels need data.
                            "budget": {"budgets": [{"id": "search-daily", "match": {"feature": "search"},
                                                    "limit_usd": "100", "window": "day"}]},
                        }))
    try:
        prom = start_prometheus(workdir / "prometheus", envoy.admin_port)
    except Exception:
        envoy.stop()
        raise
    try:
        yield envoy, prom.base
    finally:
        prom.stop()
        envoy.stop()


def _headers(feature: str | None, customer: str) -> dict[str, str]:
    h = {"x-llm-customer": customer, "x-llm-user": "u-" + customer}
    if feature is not None:
        h["x-llm-feature"] = feature
    return h


def _openai(envoy, feature, customer, retries=0):
    return openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=retries,
                         default_headers=_headers(feature, customer))


def _anthropic(envoy, feature, customer):
    return anthropic.Anthropic(base_url=envoy.url, api_key="sk-ant-test", max_retries=0,
                               default_headers=_headers(feature, customer))


HI = [{"role": "user", "content": "Hi"}]


def _post(url: str, body: dict, headers: dict[str, str]) -> bytes:
    """A raw JSON POST, for bodies an SDK would refuse to parse."""
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read()


def drive_demo_traffic(envoy) -> int:
    """Mixed traffic covering every panel; returns the number of LLM requests sent."""
    sent = 0
    # Plain and streamed chat, with usage: tokens, cost, stream timings.
    _openai(envoy, "search", "acme").chat.completions.create(model="gpt-5-nano", messages=HI)
    list(_openai(envoy, "support", "globex").chat.completions.create(
        model="gpt-5-nano", messages=HI, stream=True, stream_options={"include_usage": True}))
    list(_anthropic(envoy, "summarize", "initech").messages.create(
        model="claude-haiku-4-5", max_tokens=64, stream=True, messages=HI))
    # Prompt cache reads (cache hit rate).
    _anthropic(envoy, "search", "umbrella").messages.create(
        model="claude-haiku-4-5", max_tokens=64,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        messages=HI)
    _openai(envoy, "support", "hooli").responses.create(model="gpt-4o", input="Hello")
    list(_openai(envoy, "search", "acme").responses.create(model="gpt-4.1-mini", input="Weather?", stream=True))
    # No feature header: `unknown`.
    _openai(envoy, None, "stark").embeddings.create(model="text-embedding-3-small", input="hello")
    # A stream without include_usage: the filter injects it on the way up (or estimates).
    list(_openai(envoy, "search", "wayne").chat.completions.create(model="gpt-5-nano", messages=HI, stream=True))
    # A 200 whose body is not JSON: nothing to read or estimate from, so usage is missing.
    _post(envoy.url + "/v1/chat/completions", {"model": "gpt-5-nano", "messages": HI},
          {"x-mock-fixture": "agentgateway/detect/non-json", **_headers("search", "wayne")})
    # A model without a price (the recorded body names gpt-5.6).
    _openai(envoy, "support", "tyrell").chat.completions.create(
        model="gpt-5.6", messages=HI, extra_headers={"x-mock-fixture": "agentgateway/completions/cache_write.json"})
    sent += 10
    # Retries: as the SDK marks its own (priced, counted with cost) and as a front Envoy does.
    _openai(envoy, "search", "acme").chat.completions.create(
        model="gpt-5-nano", messages=HI, extra_headers={"x-stainless-retry-count": "1"})
    _openai(envoy, "support", "globex").chat.completions.create(
        model="gpt-5-nano", messages=HI, extra_headers={"x-envoy-attempt-count": "2"})
    sent += 2
    # A real SDK retry: the upstream answers 500 twice (the fixture does not exist), the SDK
    # retries once with x-stainless-retry-count: 1. Two 5xx responses, one client retry.
    with pytest.raises(openai.InternalServerError):
        _openai(envoy, "search", "acme", retries=1).chat.completions.create(
            model="gpt-5-nano", messages=HI, extra_headers={"x-mock-fixture": "no/such-fixture.json"})
    sent += 2
    # Non-LLM traffic.
    http_get(envoy.url + "/healthz")
    return sent


def _nano(cost_usd: str) -> int:
    nano = Decimal(cost_usd) * 1_000_000_000
    assert nano == nano.to_integral_value(), cost_usd
    return int(nano)


@pytest.fixture(scope="module")
def traffic(stack):
    envoy, base = stack
    sent = drive_demo_traffic(envoy)
    def metered():
        return [x for x in envoy.access_entries() if str(x.get("llm.record") or "").startswith("{")]
    entries = wait_until(lambda: len(metered()) >= sent and metered(), 15, "access log entries")
    assert len(entries) == sent
    return entries


def test_traffic_produced_every_kind_of_series(stack, traffic):
    envoy, _ = stack
    records = [json.loads(e["llm.record"]) for e in traffic]
    assert {r["llm.retry_source"] for r in records} == {None, "client", "proxy"}
    streams = [r for r in records if r["llm.streamed"] and r["llm.usage_source"] == "reported"]
    assert streams and all(r["llm.time_to_first_token_ms"] is not None for r in streams)
    assert {e["response_code"] for e in traffic} == {200, 500}
    # Users are in the access log, never in metrics by default.
    assert {e["llm.user"] for e in traffic} >= {"u-acme", "u-globex"}
    prom = envoy.prometheus()
    assert 'user="' not in prom and "u-acme" not in prom


def _dashboard_queries(*, budget: bool):
    return [q for q in dashboard_queries.queries(rate_interval="1m", interval="1s", range_="1h")
            # Last week's comparison series cannot exist in a fresh Prometheus.
            if "offset 1w" not in q.expr and budget == any(m in q.expr for m in BUDGET_METRICS)]


def _assert_all_return_data(base, queries):
    def empty_panels():
        now = time.time()
        empty = []
        for q in queries:
            r = _query(base, q.expr, instant=q.instant, now=now)
            assert r["status"] == "success", (q.panel, r)
            assert not r.get("warnings"), (q.panel, r["warnings"])
            if not r["data"]["result"]:
                empty.append(f"{q.panel} [{q.ref_id}]")
        return empty

    # Histograms reach /stats/prometheus on Envoy's 5 s flush, rates need two scrapes.
    deadline = time.monotonic() + 45
    while (empty := empty_panels()) and time.monotonic() < deadline:
        time.sleep(1)
    assert empty == [], f"panels without data: {empty}"


def test_every_dashboard_query_returns_data(stack, traffic):
    _, base = stack
    queries = _dashboard_queries(budget=False)
    assert len(queries) >= 25
    _assert_all_return_data(base, queries)


def test_budget_panels_return_data(stack, traffic):
    envoy, base = stack
    text = envoy.prometheus()
    assert all(m in text for m in BUDGET_METRICS), "the search budget's metrics are missing"
    queries = _dashboard_queries(budget=True)
    assert len(queries) == 2
    _assert_all_return_data(base, queries)


def test_spend_by_feature_agrees_with_the_access_log_to_the_nano_usd(stack, traffic):
    _, base = stack
    expected: dict[str, int] = {}
    for e in traffic:
        if e["llm.cost_usd"]:
            expected[e["llm.feature"]] = expected.get(e["llm.feature"], 0) + _nano(e["llm.cost_usd"])
    assert set(expected) == {"search", "support", "summarize", "unknown"}

    def from_prometheus():
        rows = _instant(base, "sum by (feature) (tokenmeter_cost_nanousd_total)")
        return {r["metric"]["feature"]: int(Decimal(r["value"][1])) for r in rows}

    got = wait_until(lambda: (g := from_prometheus()) == expected and g, 15,
                     f"prometheus spend by feature == access log {expected}")
    assert got == expected
    # The dashboard's own panel shows the same features. Not its values: `increase()` leaves
    # out what a series held at its first scrape and extrapolates, so even the order can
    # differ on a few seconds of traffic.
    [q] = [q for q in dashboard_queries.queries(range_="1h") if q.panel == "Top 10 features by spend"]
    assert {r["metric"]["feature"] for r in _instant(base, q.expr)} == set(expected)


def test_retries_status_classes_and_overflow_as_counted(stack, traffic):
    _, base = stack
    def by(expr, label):
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in _instant(base, expr)}
    wait_until(lambda: by("sum by (retry_source) (tokenmeter_retries_total)", "retry_source")
               == {"client": 2.0, "proxy": 1.0}, 15, "retry counters")
    retry_cost = by("sum by (retry_source) (tokenmeter_retry_cost_nanousd_total)", "retry_source")
    priced_retries = {}
    for e in traffic:
        r = json.loads(e["llm.record"])
        if r["llm.retry_source"] and e["llm.cost_usd"]:
            priced_retries[r["llm.retry_source"]] = priced_retries.get(r["llm.retry_source"], 0) + _nano(e["llm.cost_usd"])
    assert retry_cost == {k: float(v) for k, v in priced_retries.items()}
    assert by("sum by (http_status_class) (tokenmeter_responses_total)", "http_status_class") == {
        "2xx": float(len(traffic) - 2), "5xx": 2.0}
    overflow = by("sum by (dimension) (tokenmeter_label_overflow_total)", "dimension")
    assert overflow.get("customer", 0) > 0 and overflow.get("feature", 0) == 0
    customers = {r["metric"]["customer"] for r in _instant(base, "sum by (customer) (tokenmeter_requests_total)")}
    assert "other" in customers and len(customers) <= LABEL_CAP + 1 + 1  # + other + unknown


def test_stream_timing_histograms_have_samples(stack, traffic):
    _, base = stack
    for metric in ("gen_ai_server_time_to_first_token_ms", "gen_ai_server_time_per_output_token_ms",
                   "gen_ai_client_operation_duration_ms", "gen_ai_client_token_usage"):
        wait_until(lambda: _instant(base, f"sum({metric}_count)"), 15, f"{metric} samples")
    streams_with_content = sum(
        1 for e in traffic if json.loads(e["llm.record"])["llm.time_to_first_token_ms"] is not None)
    assert streams_with_content >= 3
    wait_until(lambda: float(_instant(base, "sum(gen_ai_server_time_to_first_token_ms_count)")[0]["value"][1])
               == streams_with_content, 15, "one time-to-first-token sample per stream with content")


def test_every_alert_rule_evaluates_on_real_data(stack, traffic):
    _, base = stack
    rules = wait_until(
        lambda: [r for g in json.loads(http_get(base + "/api/v1/rules"))["data"]["groups"] for r in g["rules"]
                 if r.get("lastEvaluation", "").startswith("20")],
        15, "rule evaluation")
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert bad == []


def test_user_label_only_when_configured(mock, tmp_path_factory):
    """`metrics.user_label: true` adds a `user` label that the shipped stats_tags extract."""
    from .harness import parse_prometheus

    envoy = start_envoy(tmp_path_factory.mktemp("envoy-user-label"), mock.port,
                        plugin_config=json.dumps({"metrics": {"user_label": True}}))
    try:
        _openai(envoy, "search", "acme").chat.completions.create(
            model="gpt-5-nano", messages=HI, extra_headers={"x-llm-user": "alice@example.com"})
        envoy.wait_entry(lambda e: e.get("llm.user") == "alice@example.com")
        samples = [(n, l) for n, l, _ in parse_prometheus(envoy.prometheus()) if n == "tokenmeter_requests_total"]
        assert samples == [("tokenmeter_requests_total", {
            "gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-5-nano", "feature": "search",
            "customer": "acme", "user": "alice@example.com"})]
    finally:
        envoy.stop()
