"""End-to-end: OpenRouter's reported cost through real Envoy and the optimised filter.

OpenRouter (`Host: openrouter.ai`, detected as provider `openrouter`) reports what it billed
in `usage.cost` (USD credits). The mock upstream replays the schema-built fixtures under
tests/fixtures/openrouter/ (see the README there), and every expected number is copied from
them: that cost, not a price-table figure, must be the request's cost in the access log
(`llm.cost_usd`, `llm.cost_source=provider`, `llm.record`) and in
`tokenmeter_cost_nanousd_total`.
"""

from __future__ import annotations

import json

import openai

from .harness import assert_tokens, metric_sum


def openrouter_client(envoy, tag: str, fixture: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=envoy.url + "/api/v1", api_key="sk-or-v1-test", max_retries=0,
        default_headers={"Host": "openrouter.ai", "x-mock-fixture": fixture,
                         "x-llm-feature": "e2e", "x-llm-customer": tag, "x-llm-user": "u-" + tag})


def check(envoy, tag: str, *, tokens, cost_usd: str, cost_pico: int, cost_nanousd: int) -> None:
    entry = envoy.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["response_code"] == 200
    assert entry["gen_ai.provider.name"] == "openrouter"
    assert entry["gen_ai.operation.name"] == "chat"
    assert_tokens(entry, tokens)
    assert entry["llm.usage_source"] == "reported"
    assert entry["llm.cost_usd"] == cost_usd
    assert entry["llm.cost_source"] == "provider"
    record = json.loads(entry["llm.record"])
    assert record["llm.cost_source"] == "provider"
    assert record["llm.cost_usd"] == cost_usd
    assert record["llm.cost_pico_usd"] == cost_pico

    # The model label is the priced name or the model as sent; provider and customer pick
    # out this request's series whichever it is.
    labels = dict(gen_ai_provider_name="openrouter", feature="e2e", customer=tag)
    prom = envoy.prometheus()
    assert metric_sum(prom, "tokenmeter_requests_total", **labels) == 1
    assert metric_sum(prom, "tokenmeter_cost_nanousd_total", **labels) == cost_nanousd
    assert metric_sum(prom, "tokenmeter_unpriced_requests_total",
                      gen_ai_provider_name="openrouter") == 0


def test_openrouter_json_cost_is_the_requests_cost(envoy, tag):
    client = openrouter_client(envoy, tag, "repo:openrouter/chat.json")
    reply = client.chat.completions.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello!"}])
    assert reply.usage.prompt_tokens == 194  # the SDK saw the fixture
    # "cost": 0.0000312 USD = 31,200 nano-USD; 194 in (128 cached), 9 out.
    check(envoy, tag, tokens=(194, 9, 128, 0, 0), cost_usd="0.000031200",
          cost_pico=31_200_000, cost_nanousd=31_200)


def test_openrouter_stream_cost_from_the_final_usage_chunk(envoy, tag):
    client = openrouter_client(envoy, tag, "repo:openrouter/chat-stream.sse")
    chunks = list(client.chat.completions.create(
        model="meta-llama/llama-3.1-8b-instruct", messages=[{"role": "user", "content": "Hi"}],
        stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage.completion_tokens == 10
    # "cost": 7.6e-7 USD (exponent form) = 760 nano-USD; 13 in, 10 out.
    check(envoy, tag, tokens=(13, 10, 0, 0, 0), cost_usd="0.000000760",
          cost_pico=760_000, cost_nanousd=760)
