"""End-to-end: every API the e2e suite did not yet cover, through a real Envoy running the
optimised filter in front of the mock upstream -- Bedrock InvokeModel (JSON, stream, usage
from headers), Vertex AI Claude, Azure OpenAI deployments, OpenAI legacy completions, Cohere v2,
Ollama (native and `/v1`), vLLM, and the OpenAI-compatible vendors told apart by authority
(Groq, DeepSeek, Mistral, xAI).

The vendors are recognised by the Host the client sends: Envoy's virtual host matches `*` and
forwards it as the :authority the filter sees. Expected numbers are hard-coded from the fixtures
(tests/fixtures/*/README.md) and from list prices per 1M tokens; token tuples are (input,
output, cache read, cache write, reasoning), input and output being the totals.

  Bedrock InvokeModel, claude-haiku-4-5 (Anthropic: $1 in / $0.10 cache read / $1.25 cache
      write 5m / $5 out), bedrock/invoke.json: 30 uncached + 1000 read + 200 written, 60 out
      30 * 1 + 1000 * 0.10 + 200 * 1.25 + 60 * 5 = 30 + 100 + 250 + 300 = 680 micro-USD
  Bedrock InvokeModelWithResponseStream, claude-sonnet-4 ($3 / $0.30 / $3.75 / $15),
      bedrock/invoke_stream.bin: 21 uncached + 640 read + 1500 written, 48 out
      21 * 3 + 640 * 0.30 + 1500 * 3.75 + 48 * 15 = 63 + 192 + 5625 + 720 = 6600 micro-USD
  Bedrock InvokeModel, Mistral Large 24.02 (Bedrock on-demand list price $4 in / $12 out,
      configured in `prices.models` for Bedrock's id: the built-in table prices no Bedrock
      Mistral id), usage only in x-amzn-bedrock-{input,output}-token-count: 25 in, 40 out
      25 * 4 + 40 * 12 = 100 + 480 = 580 micro-USD
  Vertex AI rawPredict, claude-haiku-4-5 (anthropic/basic.json): 15 uncached + 12 read +
      13 written, 21 out: 15 * 1 + 12 * 0.10 + 13 * 1.25 + 21 * 5 = 137.45 micro-USD
  Vertex AI streamRawPredict, claude-haiku-4-5 (anthropic/stream-basic.sse): 15 in, 21 out
      15 * 1 + 21 * 5 = 120 micro-USD
  Azure deployment gpt-5-nano, model from the response gpt-5-nano-2025-08-07 ($0.05 in /
      $0.40 out), azure/azure-chat-basic.json: 8 in, 271 out (192 reasoning)
      8 * 0.05 + 271 * 0.40 = 0.4 + 108.4 = 108.8 micro-USD
  Azure deployment chat35 -> gpt-3.5-turbo through `azure_deployments` ($0.50 / $1.50), the
      response names Azure's unpriced spelling gpt-35-turbo: 20 in, 15 out
      20 * 0.50 + 15 * 1.50 = 10 + 22.5 = 32.5 micro-USD
  OpenAI /v1/completions, babbage-002 ($0.40 in / $0.40 out), cassettes completion-basic and
      completion-streaming-usage: 31 in, 25 out: 56 * 0.40 = 22.4 micro-USD
  Cohere command-a-03-2025 ($2.50 / $10), cohere/chat.json billed units 17 in, 9 out
      17 * 2.50 + 9 * 10 = 42.5 + 90 = 132.5 micro-USD
  Cohere command-r-08-2024 ($0.15 / $0.60), cohere/chat-stream.sse billed 3 in, 3 out
      3 * 0.15 + 3 * 0.60 = 0.45 + 1.80 = 2.25 micro-USD
  Ollama llama3.2 / qwen2.5:0.5b: self-hosted, no published price: unpriced (cost empty,
      no cost series), never $0
  vLLM meta-llama/Llama-3.1-8B-Instruct, the operator's price in `prices.models` ($0.10 in /
      $0.01 cached / $0.20 out), compat/vllm-stream.sse: 1500 in (1024 cached), 120 out
      476 * 0.10 + 1024 * 0.01 + 120 * 0.20 = 47.6 + 10.24 + 24 = 81.84 micro-USD
  Groq llama-3.1-8b-instant ($0.05 / $0.08), compat/groq-stream.sse x_groq.usage 42 in, 7 out
      42 * 0.05 + 7 * 0.08 = 2.1 + 0.56 = 2.66 micro-USD
  DeepSeek deepseek-chat ($0.28 cache miss / $0.028 cache hit / $0.42 out),
      compat/deepseek-chat.json: 1200 in of which 1024 hits, 10 out
      176 * 0.28 + 1024 * 0.028 + 10 * 0.42 = 49.28 + 28.672 + 4.2 = 82.152 micro-USD
  Mistral mistral-small-2506 ($0.10 / $0.30), compat/mistral-stream.sse: 31 in, 120 out
      31 * 0.10 + 120 * 0.30 = 3.1 + 36 = 39.1 micro-USD
  xAI grok-3-mini ($0.30 in / $0.075 cached / $0.50 out), compat/xai-chat.json: 32 in (6
      cached), completion 9 + reasoning 94 reported outside it = 103 out
      26 * 0.30 + 6 * 0.075 + 103 * 0.50 = 7.8 + 0.45 + 51.5 = 59.75 micro-USD
"""

from __future__ import annotations

import json

import pytest

from tests.mock_upstream.server import REPO_FIXTURES, load_fixture

from .harness import FIXTURES, check, post, start_envoy

CHAT = {"messages": [{"role": "user", "content": "Hello"}]}
ANTHROPIC_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 64,
                  "messages": [{"role": "user", "content": "Hello"}]}

# The deployment-specific configuration a gateway in front of these APIs needs: an Azure
# deployment map, route overrides for self-hosted servers, and prices the table cannot know.
COMPAT_CONFIG = {
    "azure_deployments": {"chat35": "gpt-3.5-turbo"},
    "routes": [
        {"path_prefix": "/v1/", "authority": "ollama.internal", "provider": "ollama"},
        {"path_prefix": "/v1/", "authority": "vllm.internal", "provider": "vllm"},
    ],
    "prices": {"models": {
        "meta-llama/Llama-3.1-8B-Instruct": {"input": "0.10", "cached_input": "0.01", "output": "0.20"},
        "mistral.mistral-large-2402-v1:0": {"input": "4", "output": "12"},
    }},
}


@pytest.fixture(scope="module")
def compat_envoy(mock, tmp_path_factory):
    e = start_envoy(tmp_path_factory.mktemp("envoy-compat"), mock.port,
                    plugin_config=json.dumps(COMPAT_CONFIG))
    yield e
    e.stop()


def fixture_bytes(rel: str) -> bytes:
    return (REPO_FIXTURES / rel).read_bytes()


# --- AWS Bedrock InvokeModel -------------------------------------------------------------

HAIKU_45 = "us.anthropic.claude-haiku-4-5-20251001-v1:0"
SONNET_4 = "us.anthropic.claude-sonnet-4-20250514-v1:0"


def test_bedrock_invoke_model_anthropic_json(envoy, tag):
    status, _, body = post(envoy, f"/model/{HAIKU_45}/invoke", ANTHROPIC_BODY, tag)
    assert status == 200 and body == fixture_bytes("bedrock/invoke.json")
    check(envoy, tag, provider="aws.bedrock", request_model=HAIKU_45,
          response_model="claude-haiku-4-5-20251001", tokens=(1230, 60, 1000, 200, 0),
          cost_usd="0.000680000", cost_nanousd=680_000, label_model="claude-haiku-4-5")


def test_bedrock_invoke_with_response_stream(envoy, tag):
    status, headers, body = post(envoy, f"/model/{SONNET_4}/invoke-with-response-stream",
                                 ANTHROPIC_BODY, tag, **{"x-mock-chunks": "13"})
    assert status == 200 and headers["content-type"] == "application/vnd.amazon.eventstream"
    # The binary stream reaches the client untouched.
    assert body == fixture_bytes("bedrock/invoke_stream.bin")
    # message_start's usage and message_stop's invocationMetrics say the same: counted once.
    check(envoy, tag, provider="aws.bedrock", request_model=SONNET_4,
          response_model="claude-sonnet-4-20250514", tokens=(2161, 48, 640, 1500, 0),
          cost_usd="0.006600000", cost_nanousd=6_600_000, label_model="claude-sonnet-4")


def test_bedrock_invoke_usage_from_response_headers(compat_envoy, tag):
    """A Mistral body carries no usage; Bedrock reports it in response headers only."""
    model = "mistral.mistral-large-2402-v1:0"
    status, headers, body = post(compat_envoy, f"/model/{model}/invoke",
                                 {"prompt": "<s>[INST] Hello [/INST]", "max_tokens": 64}, tag, **{
                                     "x-mock-fixture": "repo:bedrock/invoke_mistral.json",
                                     "x-mock-headers": json.dumps({
                                         "x-amzn-bedrock-input-token-count": "25",
                                         "x-amzn-bedrock-output-token-count": "40"})})
    assert status == 200 and "usage" not in json.loads(body)
    assert headers["x-amzn-bedrock-output-token-count"] == "40"
    check(compat_envoy, tag, provider="aws.bedrock", request_model=model, response_model=None,
          tokens=(25, 40, 0, 0, 0), cost_usd="0.000580000", cost_nanousd=580_000)


# --- Vertex AI, Claude ---------------------------------------------------------------------

VERTEX = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-haiku-4-5@20251001"
VERTEX_BODY = {"anthropic_version": "vertex-2023-10-16", "max_tokens": 64,
               "messages": [{"role": "user", "content": "Hi"}]}


def test_vertex_anthropic_raw_predict(envoy, tag):
    status, _, body = post(envoy, VERTEX + ":rawPredict", VERTEX_BODY, tag)
    assert status == 200 and json.loads(body)["usage"]["output_tokens"] == 21
    # The body names no model: the request model comes from the path, without `@version`.
    check(envoy, tag, provider="gcp.vertex_ai", request_model="claude-haiku-4-5",
          response_model="claude-haiku-4-5-20251001", tokens=(40, 21, 12, 13, 0),
          cost_usd="0.000137450", cost_nanousd=137_450)


def test_vertex_anthropic_stream_raw_predict(envoy, tag):
    status, headers, body = post(envoy, VERTEX + ":streamRawPredict", {**VERTEX_BODY, "stream": True},
                                 tag, **{"x-mock-chunks": "9"})
    assert status == 200 and "event-stream" in headers["content-type"]
    assert body == fixture_bytes("anthropic/stream-basic.sse")
    check(envoy, tag, provider="gcp.vertex_ai", request_model="claude-haiku-4-5",
          response_model="claude-haiku-4-5-20251001", tokens=(15, 21, 0, 0, 0),
          cost_usd="0.000120000", cost_nanousd=120_000)


# --- Azure OpenAI deployments --------------------------------------------------------------

AZURE_HOST = "myresource.openai.azure.com"


def test_azure_deployment_model_from_the_response(compat_envoy, tag):
    """The deployment is not in `azure_deployments` and the body names no model: the
    response's model prices it."""
    path = "/openai/deployments/gpt-5-nano/chat/completions?api-version=2024-12-01-preview"
    status, _, body = post(compat_envoy, path, CHAT, tag, Host=AZURE_HOST)
    assert status == 200 and json.loads(body)["model"] == "gpt-5-nano-2025-08-07"
    check(compat_envoy, tag, provider="azure.ai.openai", request_model="",
          response_model="gpt-5-nano-2025-08-07", tokens=(8, 271, 0, 0, 192),
          cost_usd="0.000108800", cost_nanousd=108_800, label_model="gpt-5-nano")


def test_azure_deployment_priced_through_the_deployment_map(compat_envoy, tag):
    """Azure answers `gpt-35-turbo`, a spelling no price list has: `azure_deployments`
    maps the deployment `chat35` to gpt-3.5-turbo."""
    path = "/openai/deployments/chat35/chat/completions?api-version=2024-10-21"
    status, _, body = post(compat_envoy, path, CHAT, tag, Host=AZURE_HOST,
                           **{"x-mock-fixture": "repo:azure/azure-chat-gpt35.json"})
    assert status == 200 and json.loads(body)["model"] == "gpt-35-turbo"
    check(compat_envoy, tag, provider="azure.ai.openai", request_model="",
          response_model="gpt-35-turbo", tokens=(20, 15, 0, 0, 0),
          cost_usd="0.000032500", cost_nanousd=32_500, label_model="gpt-3.5-turbo")


# --- OpenAI legacy completions -------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_openai_legacy_completions(envoy, tag, stream):
    request = json.loads((REPO_FIXTURES / "openai" / (
        "completion-streaming-usage.request.json" if stream else "completion-basic.request.json")).read_text())
    status, _, body = post(envoy, "/v1/completions", request, tag, **{"x-mock-chunks": "7"})
    cassette = "ai-gateway-cassettes/" + ("completion-streaming-usage.yaml" if stream else "completion-basic.yaml")
    assert status == 200 and body == load_fixture(FIXTURES, cassette)
    # The response names `babbage:2023-07-21-v2`; the requested babbage-002 is priced.
    check(envoy, tag, provider="openai", operation="text_completion", request_model="babbage-002",
          response_model="babbage:2023-07-21-v2", tokens=(31, 25, 0, 0, 0),
          cost_usd="0.000022400", cost_nanousd=22_400)


# --- Cohere v2 chat ------------------------------------------------------------------------

def test_cohere_v2_chat_json(envoy, tag):
    status, _, body = post(envoy, "/v2/chat", {"model": "command-a-03-2025", **CHAT}, tag,
                           Host="api.cohere.com")
    assert status == 200 and json.loads(body)["usage"]["billed_units"]["input_tokens"] == 17
    # Billed units, not `usage.tokens` (215 in, Cohere's prompt template included).
    check(envoy, tag, provider="cohere", request_model="command-a-03-2025", response_model=None,
          tokens=(17, 9, 0, 0, 0), cost_usd="0.000132500", cost_nanousd=132_500)


def test_cohere_v2_chat_stream(envoy, tag):
    status, headers, body = post(envoy, "/v2/chat", {"model": "command-r-08-2024", "stream": True, **CHAT},
                                 tag, Host="api.cohere.com", **{"x-mock-chunks": "6"})
    assert status == 200 and "event-stream" in headers["content-type"]
    assert body == fixture_bytes("cohere/chat-stream.sse")
    check(envoy, tag, provider="cohere", request_model="command-r-08-2024", response_model=None,
          tokens=(3, 3, 0, 0, 0), cost_usd="0.000002250", cost_nanousd=2_250)


# --- Ollama ----------------------------------------------------------------------------------

def test_ollama_native_chat_ndjson(envoy, tag):
    status, headers, body = post(envoy, "/api/chat", {"model": "llama3.2", **CHAT}, tag,
                                 Host="localhost:11434", **{"x-mock-chunks": "8"})
    assert status == 200 and headers["content-type"] == "application/x-ndjson"
    assert body == fixture_bytes("ollama/chat.ndjson")
    check(envoy, tag, provider="ollama", request_model="llama3.2", response_model="llama3.2",
          tokens=(26, 282, 0, 0, 0), cost_usd="", cost_nanousd=0)


def test_ollama_native_generate_ndjson(envoy, tag):
    status, _, body = post(envoy, "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "Why is the sky blue?"},
                           tag, Host="localhost:11434", **{"x-mock-chunks": "5"})
    assert status == 200 and body == fixture_bytes("ollama/generate.ndjson")
    check(envoy, tag, provider="ollama", operation="text_completion", request_model="qwen2.5:0.5b",
          response_model="qwen2.5:0.5b", tokens=(31, 7, 0, 0, 0), cost_usd="", cost_nanousd=0)


def test_ollama_openai_compatible_through_a_route_override(compat_envoy, tag):
    status, _, body = post(compat_envoy, "/v1/chat/completions", {"model": "llama3.2", **CHAT}, tag,
                           Host="ollama.internal:11434",
                           **{"x-mock-fixture": "repo:compat/ollama-openai-chat.json"})
    assert status == 200 and json.loads(body)["system_fingerprint"] == "fp_ollama"
    check(compat_envoy, tag, provider="ollama", request_model="llama3.2", response_model="llama3.2",
          tokens=(33, 11, 0, 0, 0), cost_usd="", cost_nanousd=0)


# --- vLLM ------------------------------------------------------------------------------------

def test_vllm_stream_through_a_route_override_and_a_configured_price(compat_envoy, tag):
    model = "meta-llama/Llama-3.1-8B-Instruct"
    request = {"model": model, "stream": True, "stream_options": {"include_usage": True}, **CHAT}
    status, _, body = post(compat_envoy, "/v1/chat/completions", request, tag, Host="vllm.internal:8000",
                           **{"x-mock-fixture": "repo:compat/vllm-stream.sse", "x-mock-chunks": "7"})
    assert status == 200 and body == fixture_bytes("compat/vllm-stream.sse")
    check(compat_envoy, tag, provider="vllm", request_model=model, response_model=model,
          tokens=(1500, 120, 1024, 0, 0), cost_usd="0.000081840", cost_nanousd=81_840)


# --- OpenAI-compatible vendors, by authority ------------------------------------------------

def test_groq_stream_usage_under_x_groq(envoy, tag):
    request = {"model": "llama-3.1-8b-instant", "stream": True, **CHAT}
    status, _, body = post(envoy, "/openai/v1/chat/completions", request, tag, Host="api.groq.com",
                           **{"x-mock-fixture": "repo:compat/groq-stream.sse", "x-mock-chunks": "4"})
    assert status == 200 and body == fixture_bytes("compat/groq-stream.sse")
    check(envoy, tag, provider="groq", request_model="llama-3.1-8b-instant",
          response_model="llama-3.1-8b-instant", tokens=(42, 7, 0, 0, 0),
          cost_usd="0.000002660", cost_nanousd=2_660)


def test_deepseek_prompt_cache_hits(envoy, tag):
    status, _, body = post(envoy, "/chat/completions", {"model": "deepseek-chat", **CHAT}, tag,
                           Host="api.deepseek.com", **{"x-mock-fixture": "repo:compat/deepseek-chat.json"})
    assert status == 200 and json.loads(body)["usage"]["prompt_cache_hit_tokens"] == 1024
    check(envoy, tag, provider="deepseek", request_model="deepseek-chat", response_model="deepseek-chat",
          tokens=(1200, 10, 1024, 0, 0), cost_usd="0.000082152", cost_nanousd=82_152)


def test_mistral_stream_with_usage_in_the_last_chunk(envoy, tag):
    request = {"model": "mistral-small-2506", "stream": True, **CHAT}
    status, _, body = post(envoy, "/v1/chat/completions", request, tag, Host="api.mistral.ai",
                           **{"x-mock-fixture": "repo:compat/mistral-stream.sse", "x-mock-chunks": "6"})
    assert status == 200 and body == fixture_bytes("compat/mistral-stream.sse")
    check(envoy, tag, provider="mistral_ai", request_model="mistral-small-2506",
          response_model="mistral-small-2506", tokens=(31, 120, 0, 0, 0),
          cost_usd="0.000039100", cost_nanousd=39_100)


def test_xai_reasoning_tokens_outside_completion_tokens(envoy, tag):
    status, _, body = post(envoy, "/v1/chat/completions", {"model": "grok-3-mini", **CHAT}, tag,
                           Host="api.x.ai", **{"x-mock-fixture": "repo:compat/xai-chat.json"})
    assert status == 200 and json.loads(body)["usage"]["total_tokens"] == 135
    check(envoy, tag, provider="x_ai", request_model="grok-3-mini", response_model="grok-3-mini",
          tokens=(32, 103, 6, 0, 94), cost_usd="0.000059750", cost_nanousd=59_750)
