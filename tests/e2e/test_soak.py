"""End-to-end soak: mixed LLM traffic through the real Envoy (two workers) from concurrent
clients, then an exact three-way reconciliation with zero tolerance:

    what the upstream served  ==  sums in the access log  ==  counters in /stats/prometheus

for requests, every token type and cost (nano-USD). "Served" counts only responses that
reached the client byte for byte as the mock sent them; the expected tokens and cost of each
fixture are its recorded usage priced by hand at list prices (the derivations are in
tests/e2e/test_metering.py, which checks each fixture on its own).

`make test` runs 500 requests; `SOAK_REQUESTS=20000 pytest tests/e2e/test_soak.py` runs longer.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
from collections import Counter
from decimal import Decimal

from .harness import FIXTURES, metric_sum
from tests.mock_upstream.server import choose, gzip_bytes, load_fixture, stream_bytes

REQUESTS = int(os.environ.get("SOAK_REQUESTS", "500"))
CLIENTS = 8
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")
LOG_KEYS = ("gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
            "gen_ai.usage.cache_read.input_tokens", "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.reasoning.output_tokens")

# kind -> (path, request body, gzip, (input, output, cache_read, cache_creation, reasoning),
#          cost in nano-USD)
KINDS = {
    "chat": ("/v1/chat/completions", {"model": "gpt-5-nano", "messages": []}, False,
             (8, 377, 0, 0, 320), 151_200),
    "chat_gz": ("/v1/chat/completions", {"model": "gpt-5-nano", "messages": []}, True,
                (8, 377, 0, 0, 320), 151_200),
    "chat_sse": ("/v1/chat/completions", {"model": "gpt-5-nano", "stream": True,
                                          "stream_options": {"include_usage": True}}, False,
                 (18, 286, 0, 0, 192), 115_300),
    "chat_sse_gz": ("/v1/chat/completions", {"model": "gpt-5-nano", "stream": True,
                                             "stream_options": {"include_usage": True}}, True,
                    (18, 286, 0, 0, 192), 115_300),
    "responses": ("/v1/responses", {"model": "gpt-4o", "input": "Hello"}, False,
                  (10, 10, 0, 0, 0), 125_000),
    "responses_sse": ("/v1/responses", {"model": "gpt-4.1-mini", "input": "x", "stream": True},
                      False, (12, 8, 0, 0, 0), 17_600),
    "embeddings": ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "x"}, False,
                   (8, 0, 0, 0, 0), 160),
    "anthropic": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64}, False,
                  (40, 21, 12, 13, 0), 137_450),
    "anthropic_sse": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64,
                                       "stream": True}, False, (15, 21, 0, 0, 0), 120_000),
    "anthropic_sse_gz": ("/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 64,
                                          "stream": True}, True, (15, 21, 0, 0, 0), 120_000),
}


def expected_body(kind: str) -> bytes:
    path, body, gz, _, _ = KINDS[kind]
    rel, ctype = choose(path, body)
    if ctype == "text/event-stream":
        return stream_bytes(FIXTURES, rel, gz)
    data = load_fixture(FIXTURES, rel)
    return gzip_bytes(data) if gz else data


def test_soak_reconciles_exactly(envoy, tag):
    expected = {kind: expected_body(kind) for kind in KINDS}
    plan = [random.choice(list(KINDS)) for _ in range(REQUESTS)]
    served: Counter[str] = Counter()
    mismatched: list[str] = []
    lock = threading.Lock()

    def client(kinds: list[str]):
        conn = http.client.HTTPConnection("127.0.0.1", envoy.listener_port, timeout=60)
        try:
            for kind in kinds:
                path, body, gz, _, _ = KINDS[kind]
                conn.request("POST", path, body=json.dumps(body), headers={
                    "content-type": "application/json", "x-llm-customer": tag,
                    "x-llm-feature": kind, "x-mock-gzip": "1" if gz else "0",
                    "x-mock-delay-ms": "1"})
                resp = conn.getresponse()
                data = resp.read()
                with lock:
                    if resp.status == 200 and data == expected[kind]:
                        served[kind] += 1
                    else:
                        mismatched.append(f"{kind}: {resp.status} {data[:200]!r}")
        finally:
            conn.close()

    started = time.monotonic()
    threads = [threading.Thread(target=client, args=(plan[i::CLIENTS],)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    assert not mismatched, mismatched[:5]
    assert sum(served.values()) == REQUESTS

    want_tokens = [sum(served[k] * KINDS[k][3][i] for k in KINDS) for i in range(5)]
    want_cost_nano = sum(served[k] * KINDS[k][4] for k in KINDS)

    def ours() -> list[dict]:
        return [e for e in envoy.access_entries() if e.get("llm.customer") == tag]

    deadline = time.monotonic() + 20
    while len(ours()) < REQUESTS and time.monotonic() < deadline:
        time.sleep(0.2)
    entries = ours()
    assert len(entries) == REQUESTS
    assert Counter(e["llm.feature"] for e in entries) == served
    assert {e["llm.usage_source"] for e in entries} == {"reported"}
    log_tokens = [sum(int(e[key]) for e in entries) for key in LOG_KEYS]
    log_cost_nano = sum(Decimal(e["llm.cost_usd"]) * 10**9 for e in entries)
    assert log_tokens == want_tokens
    assert log_cost_nano == want_cost_nano

    prom = envoy.prometheus()
    assert metric_sum(prom, "tokenmeter_requests_total", customer=tag) == REQUESTS
    for kind, count in served.items():
        assert metric_sum(prom, "tokenmeter_requests_total", customer=tag, feature=kind) == count
    prom_tokens = [metric_sum(prom, "tokenmeter_tokens_total", customer=tag, gen_ai_token_type=t)
                   for t in TOKEN_TYPES]
    assert prom_tokens == want_tokens
    assert metric_sum(prom, "tokenmeter_cost_nanousd_total", customer=tag) == want_cost_nano
    print(f"soak: {REQUESTS} requests in {elapsed:.1f}s ({REQUESTS / elapsed:.0f}/s), "
          f"{sum(want_tokens)} tokens, {want_cost_nano} nano-USD, reconciled exactly")
