"""End-to-end: budgets, output caps and usage injection in the real Envoy (two workers).

The filter reserves each request's worst-case cost in shared data before forwarding it and
settles it to the actual cost when it ends. These tests drive concurrent traffic from the
official SDKs at a hard USD budget and check the documented bound (docs/budgets.md: spent <=
limit + sum over admitted requests of max(0, actual - estimate)), that the spend in shared
data equals the per-request costs in the access log, the SDKs' own rate-limit errors, caps
and injection as the upstream saw them, and limits pulled live from an HTTP endpoint.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import anthropic
import openai
import pytest

from .harness import free_port, metric_sum, parse_prometheus, start_envoy, static_cluster, wait_until

HARD_LIMIT_USD = Decimal("0.005")
HARD_CUSTOMER = "acme-hard"
PULLED_CUSTOMER = "pulled-plan"
LIMITS_PATH = "/v1/limits"

# gpt-5-nano: $0.05 / 1M input, $0.40 / 1M output, in pico-USD per token.
NANO_IN, NANO_OUT = 50_000, 400_000
# The mock's chat-basic fixture reports 8 prompt and 377 completion tokens.
FIXTURE_COST_PICO = 8 * NANO_IN + 377 * NANO_OUT


class Limits:
    """A tiny billing endpoint: serves whatever `body`/`status` currently say."""

    def __init__(self):
        self.status = 503
        self.body = b"not yet"
        self.hits = 0
        limits = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                limits.hits += 1
                self.send_response(limits.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(limits.body)))
                self.end_headers()
                self.wfile.write(limits.body)

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, doc: dict | bytes, status: int = 200):
        self.body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.status = status

    def stop(self):
        self.server.shutdown()


PLUGIN_CONFIG = {
    "budget": {
        "remaining_headers": True,
        "limits_source": {"cluster": "limits", "path": LIMITS_PATH, "interval_seconds": 1,
                          "timeout_ms": 1000},
        "budgets": [
            {"id": "acme-hard", "match": {"customer": HARD_CUSTOMER},
             "limit_usd": str(HARD_LIMIT_USD), "window": "month"},
            {"id": "stream-hard", "match": {"customer": "stream-cust"}, "limit_tokens": 1100,
             "window": "day"},
            {"id": "capped", "match": {"feature": "capped"}, "output_cap": 16},
            {"id": "under-hard", "match": {"customer": "under-cust"}, "limit_usd": "0.002",
             "window": "month", "output_cap": 100},
            {"id": "choices", "match": {"feature": "choices", "customer": "*"}, "limit_tokens": 1000,
             "window": "day", "output_cap": 100},
            {"id": "per-customer", "match": {"customer": "*"}, "limit_tokens": 10_000_000,
             "window": "day", "mode": "soft"},
        ],
    }
}


@pytest.fixture(scope="module")
def limits():
    server = Limits()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def benv(mock, limits, tmp_path_factory):
    e = start_envoy(tmp_path_factory.mktemp("envoy-budgets"), mock.port,
                    plugin_config=json.dumps(PLUGIN_CONFIG),
                    extra_clusters=[static_cluster("limits", limits.port)])
    yield e
    e.stop()


def oai(envoy, customer: str, feature: str = "budget") -> openai.OpenAI:
    return openai.OpenAI(base_url=envoy.url + "/v1", api_key="test", max_retries=0,
                         default_headers={"x-llm-customer": customer, "x-llm-feature": feature})


def post(envoy, path: str, body: dict, headers: dict) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(envoy.url + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json", **headers})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def record(entry: dict) -> dict:
    return json.loads(entry["llm.record"]) if entry.get("llm.record") not in (None, "", "-") else {}


def test_hard_usd_budget_holds_under_concurrent_load(benv):
    # Requests bound their output (max_completion_tokens 400 >= the 377 the upstream reports),
    # so every estimate covers its actual cost and the documented bound is zero overshoot.
    client = oai(benv, HARD_CUSTOMER)
    outcomes = {"ok": 0, "429": 0, "other": []}
    lock = threading.Lock()

    def one(i: int):
        try:
            r = client.chat.completions.create(
                model="gpt-5-nano", messages=[{"role": "user", "content": f"Hello {i}"}],
                max_completion_tokens=400)
            assert r.usage.completion_tokens == 377
            with lock:
                outcomes["ok"] += 1
        except openai.RateLimitError as e:
            assert e.status_code == 429
            body = e.response.json()
            assert body["error"]["code"] == "rate_limit_exceeded"
            assert "acme-hard" in body["error"]["message"]
            assert int(e.response.headers["retry-after"]) >= 1
            assert e.response.headers["x-tokenmeter-budget-id"] == "acme-hard"
            with lock:
                outcomes["429"] += 1
        except Exception as e:  # noqa: BLE001 - collected and failed below
            with lock:
                outcomes["other"].append(repr(e))

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(120)))
    assert outcomes["other"] == []
    assert outcomes["ok"] > 0 and outcomes["429"] > 0, outcomes

    # Nothing in flight now. Requests rejected only because of reservations in flight may
    # have left room once those settled below their estimates: probe until one is rejected,
    # whose headers then show exactly what is spent (nothing is reserved any more).
    probes = 0
    while True:
        status, headers, _ = post(benv, "/v1/chat/completions",
                                  {"model": "gpt-5-nano", "messages": [], "max_completion_tokens": 400},
                                  {"x-llm-customer": HARD_CUSTOMER})
        probes += 1
        if status == 429:
            break
        assert status == 200 and probes < 50
    remaining = Decimal(headers["x-tokenmeter-budget-remaining-usd"])
    spent_pico = int((HARD_LIMIT_USD - remaining) * 10**12)

    def entries():
        es = [e for e in benv.access_entries() if e.get("llm.customer") == HARD_CUSTOMER]
        return es if len(es) >= 120 + probes else None

    logged = wait_until(entries, 10, "access log entries of the load")
    allowed = [e for e in logged if e["response_code"] == 200]
    rejected = [e for e in logged if e["response_code"] == 429]
    assert len(allowed) == outcomes["ok"] + probes - 1 and len(rejected) == outcomes["429"] + 1
    assert all(e["llm.budget.decision"] == "allowed" for e in allowed)
    assert all(e["llm.budget.decision"] == "rejected" and e["llm.budget.id"] == "acme-hard"
               for e in rejected)
    assert all(record(e)["llm.budget.decision"] == "rejected" for e in rejected)
    costs = [record(e)["llm.cost_pico_usd"] for e in allowed]
    assert all(c == FIXTURE_COST_PICO for c in costs)
    limit_pico = int(HARD_LIMIT_USD * 10**12)
    # Nothing lost: shared data holds exactly the access log's costs (headers have 9 decimals).
    assert abs(spent_pico - sum(costs)) < 1000, (spent_pico, sum(costs))
    overshoot = max(0, sum(costs) - limit_pico)
    print(f"\nbudget load: admitted {len(allowed)}, rejected {len(rejected)}, spent "
          f"{sum(costs)} pico of {limit_pico}, overshoot {overshoot} pico (bound 0)")
    assert overshoot == 0
    # The budget is nearly used up: the last admission left less than one reservation.
    reservation = -(-len(json.dumps({"model": "gpt-5-nano"})) // 4) * NANO_IN + 400 * NANO_OUT
    assert limit_pico - sum(costs) < 2 * reservation + FIXTURE_COST_PICO

    text = benv.prometheus()
    assert metric_sum(text, "tokenmeter_budget_admissions_total", budget="acme-hard",
                      decision="allowed") == len(allowed)
    assert metric_sum(text, "tokenmeter_budget_admissions_total", budget="acme-hard",
                      decision="rejected") == len(rejected)
    gauge = [v for n, l, v in parse_prometheus(text)
             if n == "tokenmeter_budget_utilization_ratio_permille" and l.get("budget") == "acme-hard"]
    assert gauge and 900 <= max(gauge) <= 1000, gauge


def test_overshoot_stays_within_the_documented_bound_when_estimates_are_low(benv, mock):
    # The cap (100 output tokens) is written into each request, but the mock ignores it and
    # answers 377: every admitted request costs more than it reserved. docs/budgets.md bounds
    # the end-of-window spend by limit + sum over admitted requests of (actual - estimate).
    client = oai(benv, "under-cust")
    codes = []
    lock = threading.Lock()

    def one(_):
        try:
            client.chat.completions.create(model="gpt-5-nano",
                                           messages=[{"role": "user", "content": "Hello"}])
            code = 200
        except openai.RateLimitError:
            code = 429
        with lock:
            codes.append(code)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(60)))
    admitted = codes.count(200)
    entries = wait_until(lambda: (lambda es: es if len(es) >= 60 else None)(
        [e for e in benv.access_entries() if e.get("llm.customer") == "under-cust"]), 10, "entries")
    costs = [record(e)["llm.cost_pico_usd"] for e in entries if e["response_code"] == 200]
    assert len(costs) == admitted > 0 and codes.count(429) > 0
    assert mock.last_request()["body"]["max_completion_tokens"] == 100
    body_bytes = mock.last_request()["body_bytes"]
    estimate = -(-body_bytes // 4) * NANO_IN + 100 * NANO_OUT
    limit = 2 * 10**9
    spent = sum(costs)
    bound = limit + sum(c - estimate for c in costs)
    print(f"\nlow estimates: admitted {admitted}, rejected {codes.count(429)}, estimate {estimate} "
          f"vs actual {FIXTURE_COST_PICO} pico; spent {spent}, overshoot {max(0, spent - limit)} "
          f"pico, bound {bound - limit} pico")
    assert spent <= bound


def test_admitted_streams_are_never_cut_off(benv):
    # A 1100-token budget: three slow streams reserve ~335 tokens each; a fourth request
    # while they run is rejected (booked, not spent: Retry-After is seconds), and the three
    # admitted streams still run to their end with their usage.
    client = oai(benv, "stream-cust")
    slow = {"x-mock-delay-ms": "300"}
    streams = [client.chat.completions.create(
        model="gpt-5-nano", stream=True, messages=[{"role": "user", "content": "Hi"}],
        stream_options={"include_usage": True}, max_completion_tokens=300, extra_headers=slow)
        for _ in range(3)]
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-5-nano", messages=[{"role": "user", "content": "Hi"}],
                                       max_completion_tokens=300)
    assert int(e.value.response.headers["retry-after"]) <= 2
    for s in streams:
        chunks = list(s)
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 304
    entries = wait_until(lambda: [x for x in benv.access_entries()
                                  if x.get("llm.customer") == "stream-cust"
                                  and x["response_code"] == 200] or None, 10, "stream entries")
    wait_until(lambda: len([x for x in benv.access_entries() if x.get("llm.customer") == "stream-cust"
                            and x["response_code"] == 200]) == 3, 10, "three stream entries")
    assert entries
    # Settled at 3 x 304 tokens: the next request (~335 reserved) no longer fits.
    status, headers, _ = post(benv, "/v1/chat/completions",
                              {"model": "gpt-5-nano", "messages": [], "max_completion_tokens": 300},
                              {"x-llm-customer": "stream-cust"})
    assert status == 429
    assert headers["x-tokenmeter-budget-remaining-tokens"] == str(1100 - 3 * 304)


def test_anthropic_sdk_raises_its_rate_limit_error(benv):
    client = anthropic.Anthropic(base_url=benv.url, api_key="test", max_retries=0,
                                 default_headers={"x-llm-customer": HARD_CUSTOMER})
    with pytest.raises(anthropic.RateLimitError) as e:
        client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                               messages=[{"role": "user", "content": "Hi"}])
    assert e.value.response.json()["error"]["type"] == "rate_limit_error"
    assert e.value.response.headers["x-should-retry"] == "false"


def test_output_cap_clamps_and_adds_max_tokens(benv, mock, tag):
    client = oai(benv, tag, feature="capped")
    client.chat.completions.create(model="gpt-5-nano", max_tokens=5000,
                                   messages=[{"role": "user", "content": "Hi"}])
    seen = mock.last_request()
    assert seen["body"]["max_tokens"] == 16
    # Held bodies travel without content-length (chunked), so a rewrite cannot desync it.
    assert "content-length" not in seen["headers"]
    assert seen["headers"].get("transfer-encoding") == "chunked"
    client.chat.completions.create(model="gpt-5-nano", messages=[{"role": "user", "content": "Hi"}])
    assert mock.last_request()["body"]["max_completion_tokens"] == 16
    anthropic.Anthropic(base_url=benv.url, api_key="test", max_retries=0,
                        default_headers={"x-llm-customer": tag, "x-llm-feature": "capped"}
                        ).messages.create(model="claude-haiku-4-5", max_tokens=1024,
                                          messages=[{"role": "user", "content": "Hi"}])
    assert mock.last_request()["body"]["max_tokens"] == 16


def test_every_choice_and_the_gemini_output_field_are_reserved(benv, mock, tag):
    # 1000 tokens a day, output capped at 100 per choice (written on OpenAI routes).
    headers = {"x-llm-customer": tag, "x-llm-feature": "choices"}
    chat = {"model": "gpt-5-nano", "messages": [{"role": "user", "content": "Hi"}]}
    status, _, _ = post(benv, "/v1/chat/completions", {**chat, "n": 16}, headers)
    assert status == 429, "16 choices x 100 tokens cannot fit 1000"
    status, _, _ = post(benv, "/v1/chat/completions", {**chat, "n": 2}, headers)
    assert status == 200
    seen = mock.last_request()["body"]
    assert (seen["n"], seen["max_completion_tokens"]) == (2, 100)
    # Gemini gets the cap in its own field, and its candidates multiply the reservation.
    # 615 tokens are left after the chat settled (8 + 377 reported).
    gemini = "/v1beta/models/gemini-2.5-pro:generateContent"
    contents = [{"role": "user", "parts": [{"text": "Hello"}]}]
    status, _, _ = post(benv, gemini, {"contents": contents,
                                       "generationConfig": {"maxOutputTokens": 700}}, headers)
    assert status == 200, "700 is capped to 100 on the way up"
    assert mock.last_request()["body"]["generationConfig"]["maxOutputTokens"] == 100
    # 601 left (8 + 6 reported): 8 candidates x 100 tokens cannot fit, and the 429 is
    # Gemini's own shape, so Google's SDKs raise their quota error.
    status, _, body = post(benv, gemini, {"contents": contents,
                                          "generationConfig": {"maxOutputTokens": 200,
                                                               "candidateCount": 8}}, headers)
    assert status == 429, "8 candidates x 100 tokens cannot fit 601"
    assert json.loads(body)["error"]["status"] == "RESOURCE_EXHAUSTED"
    status, _, _ = post(benv, gemini, {"contents": contents,
                                       "generationConfig": {"maxOutputTokens": 64}}, headers)
    assert status == 200


def test_stream_usage_is_requested_on_the_way_up(benv, mock, tag):
    client = oai(benv, tag)
    chunks = list(client.chat.completions.create(
        model="gpt-5-nano", stream=True, messages=[{"role": "user", "content": "Hi"}]))
    assert chunks
    seen = mock.last_request()
    assert seen["body"]["stream_options"] == {"include_usage": True}
    entry = benv.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["llm.usage_source"] == "reported"
    assert int(entry["gen_ai.usage.output_tokens"]) > 0


def test_remaining_headers_on_allowed_responses(benv, tag):
    status, headers, _ = post(benv, "/v1/chat/completions",
                              {"model": "gpt-5-nano", "messages": []}, {"x-llm-customer": tag})
    assert status == 200
    assert headers["x-tokenmeter-budget-id"] == "per-customer"
    assert int(headers["x-tokenmeter-budget-remaining-tokens"]) < 10_000_000
    entry = benv.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["llm.budget.id"] == "per-customer"
    assert entry["llm.budget.decision"] == "allowed"
    assert record(entry)["llm.budget.id"] == "per-customer"


def test_unbudgeted_get_and_non_llm_traffic_pass_straight_through(benv):
    with urllib.request.urlopen(benv.url + "/healthz", timeout=5) as r:
        assert r.read() == b"hello from the mock upstream\n"


def test_pulled_limits_take_effect_live_and_a_failed_pull_keeps_them(benv, limits):
    body = {"model": "gpt-5-nano", "messages": [], "max_completion_tokens": 10}
    hdrs = {"x-llm-customer": PULLED_CUSTOMER}
    # No document yet (the endpoint answers 503): no pulled budget applies.
    wait_until(lambda: limits.hits > 0, 10, "a first pull")
    assert post(benv, "/v1/chat/completions", body, hdrs)[0] == 200
    failures = metric_sum(benv.prometheus(), "tokenmeter_limits_pull_failures_total")
    assert failures >= 1

    limits.serve({"version": "plan-1", "budgets": [
        {"id": "pulled", "match": {"customer": PULLED_CUSTOMER}, "limit_usd": "0", "window": "day"}]})
    wait_until(lambda: post(benv, "/v1/chat/completions", body, hdrs)[0] == 429, 15,
               "the pulled zero limit to reject")
    # The puller applies it at once; the other worker on its next one-second tick.
    time.sleep(1.5)
    for _ in range(6):
        status, headers, _ = post(benv, "/v1/chat/completions", body, hdrs)
        assert status == 429 and headers["x-tokenmeter-budget-id"] == "pulled"

    # A bad document and a failing endpoint keep the last good limits, and are counted.
    before = metric_sum(benv.prometheus(), "tokenmeter_limits_pull_failures_total")
    limits.serve(b'{"budgets":[{"id":"pulled","limit_usd":"lots"}]}')
    hits = limits.hits
    wait_until(lambda: limits.hits >= hits + 2, 10, "two more pulls")
    limits.serve(b"down", status=500)
    hits = limits.hits
    wait_until(lambda: limits.hits >= hits + 2, 10, "two more pulls")
    for _ in range(6):
        assert post(benv, "/v1/chat/completions", body, hdrs)[0] == 429
    wait_until(lambda: metric_sum(benv.prometheus(), "tokenmeter_limits_pull_failures_total")
               >= before + 4, 10, "failed pulls counted")

    limits.serve({"version": "plan-2", "budgets": [
        {"id": "pulled", "match": {"customer": PULLED_CUSTOMER}, "limit_usd": "5", "window": "day"}]})
    wait_until(lambda: post(benv, "/v1/chat/completions", body, hdrs)[0] == 200, 15,
               "the raised limit to admit")
    time.sleep(1.5)
    assert all(post(benv, "/v1/chat/completions", body, hdrs)[0] == 200 for _ in range(6))
    assert "budget limits pulled (version plan-2)" in benv.envoy_log()


def test_a_body_too_large_to_hold_streams_through_unchanged_and_is_counted(benv, mock, tag):
    # 900 KB: above max_request_body_bytes (768 KiB), below Envoy's 1 MiB buffer limit plus a
    # read, so the filter gives up holding and the request goes through as sent (no cap).
    big = "x" * 900_000
    status, _, _ = post(benv, "/v1/chat/completions",
                        {"model": "gpt-5-nano", "max_tokens": 5000,
                         "messages": [{"role": "user", "content": big}]},
                        {"x-llm-customer": tag, "x-llm-feature": "capped"})
    assert status == 200
    seen = mock.last_request()
    assert seen["body"]["max_tokens"] == 5000
    assert seen["body_bytes"] > 900_000
    wait_until(lambda: metric_sum(benv.prometheus(), "tokenmeter_request_body_too_large_total") >= 1,
               10, "the oversize counter")
