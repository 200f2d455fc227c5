"""End-to-end: Gemini, Bedrock and the usage guarantee for OpenAI streams, through a real
Envoy running the optimised filter in front of the mock upstream.

Expected numbers are hard-coded from the fixtures the mock replays (tests/fixtures/*/README.md)
and from list prices (per 1M tokens):

  gemini-2.5-pro     $1.25 in / $10 out              (gemini/basic.json: 8 in, 6 out)
  gemini-2.5-flash   $0.30 in / $0.03 cached / $2.50 out   (gemini/stream.*: last running
                     total prompt 1200 incl. 1024 cached, tool-use prompt 30, candidates 87,
                     thoughts 215; input = 1200 + 30 = 1230, output = 87 + 215 = 302)
  claude-3-haiku     $0.25 in / $1.25 out            (bedrock/basic.bin: 15 in, 142 out;
                     bedrock/basic.json: 18 in, 46 out), model from the Bedrock path
  gpt-5-nano         $0.05 in / $0.005 cached / $0.40 out
"""

from __future__ import annotations

import json

import pytest

from tests.mock_upstream.server import OPENAI_USAGE_STREAM, REPO_FIXTURES, load_fixture, without_usage

from .harness import FIXTURES, check, metric_sum, post


GEMINI_REQUEST = {"contents": [{"role": "user", "parts": [{"text": "Hello"}]}]}


def test_gemini_generate_content_json(envoy, tag):
    status, _, body = post(envoy, "/v1beta/models/gemini-2.5-pro:generateContent", GEMINI_REQUEST, tag)
    assert status == 200 and json.loads(body)["usageMetadata"]["promptTokenCount"] == 8
    # 8 * 1.25 + 6 * 10 micro-USD = 70 micro-USD
    check(envoy, tag, provider="gcp.gemini", request_model="gemini-2.5-pro",
          response_model="gemini-2.5-pro", tokens=(8, 6, 0, 0, 0),
          cost_usd="0.000070000", cost_nanousd=70_000)


@pytest.mark.parametrize("query", ["?alt=sse", ""], ids=["sse", "json-array"])
def test_gemini_stream_keeps_the_last_running_total(envoy, tag, query):
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent" + query
    status, headers, body = post(envoy, path, GEMINI_REQUEST, tag, **{"x-mock-chunks": "9"})
    assert status == 200
    assert ("event-stream" in headers["content-type"]) == (query == "?alt=sse")
    # (1230 - 1024) * 0.30 + 1024 * 0.03 + 302 * 2.50 micro-USD = 61.8 + 30.72 + 755
    check(envoy, tag, provider="gcp.gemini", request_model="gemini-2.5-flash",
          response_model="gemini-2.5-flash", tokens=(1230, 302, 1024, 0, 215),
          cost_usd="0.000847520", cost_nanousd=847_520)


BEDROCK_MODEL = "us.anthropic.claude-3-haiku-20240307-v1:0"
BEDROCK_REQUEST = {"messages": [{"role": "user", "content": [{"text": "Hello"}]}]}


def test_bedrock_converse_stream_eventstream(envoy, tag):
    status, headers, body = post(envoy, f"/model/{BEDROCK_MODEL}/converse-stream", BEDROCK_REQUEST,
                                 tag, **{"x-mock-chunks": "11"})
    assert status == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    # The binary stream reaches the client untouched.
    assert body == (REPO_FIXTURES / "bedrock" / "basic.bin").read_bytes()
    # 15 * 0.25 + 142 * 1.25 micro-USD = 3.75 + 177.5
    check(envoy, tag, provider="aws.bedrock", request_model=BEDROCK_MODEL, response_model=None,
          tokens=(15, 142, 0, 0, 0), cost_usd="0.000181250", cost_nanousd=181_250,
          label_model="claude-3-haiku")


def test_bedrock_converse_json(envoy, tag):
    status, _, body = post(envoy, f"/model/{BEDROCK_MODEL}/converse", BEDROCK_REQUEST, tag)
    assert status == 200 and json.loads(body)["usage"]["inputTokens"] == 18
    # 18 * 0.25 + 46 * 1.25 micro-USD = 4.5 + 57.5
    check(envoy, tag, provider="aws.bedrock", request_model=BEDROCK_MODEL, response_model=None,
          tokens=(18, 46, 0, 0, 0), cost_usd="0.000062000", cost_nanousd=62_000,
          label_model="claude-3-haiku")


def test_openai_stream_that_never_asked_for_usage(envoy, mock, tag):
    """The client does not ask for usage. With the request-side injection (the `request`
    helper's work) the upstream sends usage, the filter meters it and strips it again, so the
    client's bytes are exactly the upstream's answer to the request the client made."""
    request = {"model": "gpt-5-nano", "stream": True,
               "messages": [{"role": "user", "content": "Hi"}]}
    status, headers, body = post(envoy, "/v1/chat/completions", request, tag,
                                 **{"x-mock-openai-usage": "derive", "x-mock-chunks": "13"})
    assert status == 200
    recorded = load_fixture(FIXTURES, OPENAI_USAGE_STREAM)
    # What the upstream sends for the client's own request (no include_usage).
    assert body == without_usage(recorded)
    entry = envoy.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["gen_ai.request.model"] == "gpt-5-nano"
    if not mock.last_request().get("include_usage"):
        # The filter did not inject include_usage (request side not merged yet): the usage is
        # estimated from the streamed text and the request size, and counted as estimated.
        assert entry["llm.usage_source"] == "estimated"
        assert int(entry["gen_ai.usage.output_tokens"]) > 0
        assert int(entry["gen_ai.usage.input_tokens"]) > 0
        prom = envoy.prometheus()
        assert metric_sum(prom, "tokenmeter_usage_estimated_total",
                          gen_ai_provider_name="openai", gen_ai_request_model="gpt-5-nano") >= 1
        pytest.skip("include_usage injection not present in this build; estimate checked")
    # Injected: the usage the upstream reported (18 in, 286 out incl. 192 reasoning).
    # 18 * 0.05 + 286 * 0.40 micro-USD = 115.3 micro-USD
    check(envoy, tag, provider="openai", request_model="gpt-5-nano",
          response_model="gpt-5-nano-2025-08-07", tokens=(18, 286, 0, 0, 192),
          cost_usd="0.000115300", cost_nanousd=115_300)


def test_stripping_in_envoy_gives_the_client_the_stream_without_usage(panic_envoy, tag):
    """The response side alone, in the real Envoy: the test build treats
    `x-tokenmeter-test-usage-injected: 1` as "the filter injected include_usage", so a client
    that sent include_usage itself must receive the stream without it, byte for byte, while
    the access log has the reported usage."""
    request = {"model": "gpt-5-nano", "stream": True, "stream_options": {"include_usage": True},
               "messages": [{"role": "user", "content": "Hi"}]}
    status, headers, body = post(panic_envoy, "/v1/chat/completions", request, tag, **{
        "x-mock-openai-usage": "derive", "x-mock-chunks": "17",
        "x-tokenmeter-test-usage-injected": "1"})
    assert status == 200
    recorded = load_fixture(FIXTURES, OPENAI_USAGE_STREAM)
    assert b'"choices":[],' in recorded  # the upstream did send the usage chunk
    assert body == without_usage(recorded)
    assert "content-length" not in headers
    check(panic_envoy, tag, provider="openai", request_model="gpt-5-nano",
          response_model="gpt-5-nano-2025-08-07", tokens=(18, 286, 0, 0, 192),
          cost_usd="0.000115300", cost_nanousd=115_300)
