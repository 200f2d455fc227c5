"""End-to-end: official SDKs -> real Envoy + optimised tokenmeter.wasm -> mock upstream.

Every expected number is hard-coded from the recorded response bodies the mock replays and
from list prices, so a wrong extraction, normalisation or price shows up as a wrong number:

  gpt-5-nano               $0.05 in / $0.005 cached / $0.40 out per 1M tokens
  gpt-4o                   $2.50 in / $1.25 cached / $10 out
  gpt-4.1-mini             $0.40 in / $0.10 cached / $1.60 out
  claude-haiku-4-5         $1 in / $0.10 cache read / $1.25 cache write (5m) / $5 out
  text-embedding-3-small   $0.02 in
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from .harness import metric_sum, assert_series, assert_tokens


def headers(tag: str, feature: str = "e2e") -> dict[str, str]:
    return {"x-llm-feature": feature, "x-llm-customer": tag, "x-llm-user": "u-" + tag}


def openai_client(envoy, tag, **extra_headers):
    return openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0,
                         default_headers={**headers(tag), **extra_headers})


def anthropic_client(envoy, tag, **extra_headers):
    return anthropic.Anthropic(base_url=envoy.url, api_key="sk-ant-test", max_retries=0,
                               default_headers={**headers(tag), **extra_headers})


def check_record(envoy, tag, *, provider, operation, request_model, response_model,
                 response_id, tokens, cost_usd, cost_nanousd):
    """Asserts the access-log line and the Prometheus series of the request tagged `tag`."""
    entry = envoy.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["gen_ai.provider.name"] == provider
    assert entry["gen_ai.operation.name"] == operation
    assert entry["gen_ai.request.model"] == request_model
    assert entry["gen_ai.response.model"] == response_model
    if response_id is not None:
        assert entry["gen_ai.response.id"] == response_id
    assert_tokens(entry, tokens)
    assert entry["llm.cost_usd"] == cost_usd
    assert entry["llm.cost_source"] == "price_table"  # none of these providers reports a cost
    assert entry["llm.usage_source"] == "reported"
    assert entry["llm.feature"] == "e2e"
    assert entry["llm.user"] == "u-" + tag
    assert entry["response_code"] == 200

    labels = dict(gen_ai_provider_name=provider, gen_ai_request_model=request_model,
                  feature="e2e", customer=tag)
    assert_series(envoy.prometheus(), labels, tokens, cost_nanousd)
    return entry


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_openai_chat_json(envoy, tag, gzipped):
    extra = {"x-mock-gzip": "1"} if gzipped else {}
    client = openai_client(envoy, tag, **extra)
    reply = client.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": "Hello!"}])
    assert reply.usage.prompt_tokens == 8  # the SDK saw the recorded body, decompressed
    # 8 * 0.05 + 377 * 0.40 micro-USD = 151.2 micro-USD
    check_record(envoy, tag, provider="openai", operation="chat", request_model="gpt-5-nano",
                 response_model="gpt-5-nano-2025-08-07",
                 response_id="chatcmpl-C4Gm9xikLXbgE8He0BHWeoM03aa72",
                 tokens=(8, 377, 0, 0, 320), cost_usd="0.000151200", cost_nanousd=151_200)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_openai_chat_stream_with_usage_chunk(envoy, tag, gzipped):
    extra = {"x-mock-gzip": "1"} if gzipped else {}
    client = openai_client(envoy, tag, **extra)
    stream = client.chat.completions.create(
        model="gpt-5-nano", messages=[{"role": "user", "content": "Hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 286
    # 18 * 0.05 + 286 * 0.40 micro-USD = 115.3 micro-USD
    check_record(envoy, tag, provider="openai", operation="chat", request_model="gpt-5-nano",
                 response_model="gpt-5-nano-2025-08-07",
                 response_id="chatcmpl-DFnKV81lMKGBRRh35sxZO8I88ireo",
                 tokens=(18, 286, 0, 0, 192), cost_usd="0.000115300", cost_nanousd=115_300)


def test_openai_responses_json(envoy, tag):
    client = openai_client(envoy, tag)
    reply = client.responses.create(model="gpt-4o", input="Hello")
    assert reply.output_text == "Hello! How can I assist you today?"
    # 10 * 2.50 + 10 * 10 micro-USD = 125 micro-USD
    check_record(envoy, tag, provider="openai", operation="chat", request_model="gpt-4o",
                 response_model="gpt-4o-2024-08-06",
                 response_id="resp_0fd43e1b46691ead0069a89a2144808199a06ce29faf5798da",
                 tokens=(10, 10, 0, 0, 0), cost_usd="0.000125000", cost_nanousd=125_000)


def test_openai_responses_stream(envoy, tag):
    client = openai_client(envoy, tag)
    events = list(client.responses.create(model="gpt-4.1-mini", input="Weather?", stream=True))
    assert events[-1].type == "response.completed"
    # 12 * 0.40 + 8 * 1.60 micro-USD = 17.6 micro-USD
    check_record(envoy, tag, provider="openai", operation="chat", request_model="gpt-4.1-mini",
                 response_model="gpt-4.1-mini", response_id=None,
                 tokens=(12, 8, 0, 0, 0), cost_usd="0.000017600", cost_nanousd=17_600)


def test_openai_embeddings(envoy, tag):
    client = openai_client(envoy, tag)
    reply = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert reply.usage.prompt_tokens == 8
    # 8 * 0.02 micro-USD = 0.16 micro-USD
    check_record(envoy, tag, provider="openai", operation="embeddings",
                 request_model="text-embedding-3-small", response_model="text-embedding-3-small",
                 response_id=None, tokens=(8, 0, 0, 0, 0), cost_usd="0.000000160",
                 cost_nanousd=160)


def test_anthropic_messages_json_with_cache(envoy, tag):
    client = anthropic_client(envoy, tag)
    reply = client.messages.create(model="claude-haiku-4-5", max_tokens=64,
                                   messages=[{"role": "user", "content": "Hi"}])
    assert reply.usage.output_tokens == 21
    # input_tokens 15 exclude cache: total input 15 + 12 read + 13 written = 40.
    # 15 * 1 + 12 * 0.10 + 13 * 1.25 + 21 * 5 micro-USD = 137.45 micro-USD
    check_record(envoy, tag, provider="anthropic", operation="chat",
                 request_model="claude-haiku-4-5", response_model="claude-haiku-4-5-20251001",
                 response_id="msg_012JYtNYb8sv6Hb67TcGT7xW",
                 tokens=(40, 21, 12, 13, 0), cost_usd="0.000137450", cost_nanousd=137_450)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_anthropic_messages_stream(envoy, tag, gzipped):
    extra = {"x-mock-gzip": "1"} if gzipped else {}
    client = anthropic_client(envoy, tag, **extra)
    events = list(client.messages.create(model="claude-haiku-4-5", max_tokens=64, stream=True,
                                         messages=[{"role": "user", "content": "Hi"}]))
    assert events[-1].type == "message_stop"
    # message_delta's cumulative 21 output tokens replace message_start's 5, never add.
    # 15 * 1 + 21 * 5 micro-USD = 120 micro-USD
    check_record(envoy, tag, provider="anthropic", operation="chat",
                 request_model="claude-haiku-4-5", response_model="claude-haiku-4-5-20251001",
                 response_id="msg_016wbjv5k86nxxd8CEZwSQnA",
                 tokens=(15, 21, 0, 0, 0), cost_usd="0.000120000", cost_nanousd=120_000)


def test_attribution_defaults_to_unknown(envoy, mock):
    before = metric_sum(envoy.prometheus(), "tokenmeter_requests_total",
                        gen_ai_request_model="text-embedding-3-small", feature="unknown",
                        customer="unknown")
    client = openai.OpenAI(base_url=envoy.url + "/v1", api_key="sk-test", max_retries=0)
    client.embeddings.create(model="text-embedding-3-small", input="x")
    from .harness import wait_until
    wait_until(lambda: metric_sum(envoy.prometheus(), "tokenmeter_requests_total",
                                  gen_ai_request_model="text-embedding-3-small",
                                  feature="unknown", customer="unknown") == before + 1,
               5, "requests_total for unknown attribution")


def test_unpriced_model_has_tokens_but_no_cost(envoy, tag):
    # The recorded body names gpt-5.6, which has no list price: its cost is unknown, not $0.
    client = openai_client(envoy, tag, **{"x-mock-fixture": "agentgateway/completions/cache_write.json"})
    client.chat.completions.create(model="gpt-5.6", messages=[{"role": "user", "content": "Hi"}])
    entry = envoy.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["gen_ai.response.model"] == "gpt-5.6"
    assert entry["gen_ai.usage.input_tokens"] == "1000"
    assert entry["gen_ai.usage.cache_read.input_tokens"] == "300"
    assert entry["gen_ai.usage.cache_creation.input_tokens"] == "200"
    assert entry["gen_ai.usage.output_tokens"] == "10"
    assert entry["llm.usage_source"] == "reported"
    assert entry["llm.cost_usd"] in (None, "")  # empty filter state renders as null
    assert entry["llm.cost_source"] in (None, "")
    labels = dict(gen_ai_provider_name="openai", gen_ai_request_model="gpt-5.6",
                  feature="e2e", customer=tag)
    prom = envoy.prometheus()
    assert metric_sum(prom, "tokenmeter_requests_total", **labels) == 1
    assert metric_sum(prom, "tokenmeter_tokens_total", gen_ai_token_type="input", **labels) == 1000
    assert metric_sum(prom, "tokenmeter_cost_nanousd_total", **labels) == 0
    assert metric_sum(prom, "tokenmeter_unpriced_requests_total", gen_ai_provider_name="openai",
                      gen_ai_request_model="gpt-5.6") >= 1
