"""End-to-end: the filter never changes what the client receives, lets non-LLM traffic through
untouched (and counts it), and meters requests that end early."""

from __future__ import annotations

import http.client
import json
import socket
import time

from .harness import FIXTURES, metric_sum, wait_until
from tests.mock_upstream.server import gzip_bytes, load_fixture, stream_bytes


def raw_post(envoy, path, body: dict, headers: dict) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", envoy.listener_port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_json_body_reaches_client_byte_for_byte(envoy, tag):
    for gz in ("0", "1"):
        status, hdrs, body = raw_post(envoy, "/v1/messages",
                                      {"model": "claude-haiku-4-5", "max_tokens": 8},
                                      {"x-llm-customer": tag, "x-mock-gzip": gz})
        assert status == 200
        expected = load_fixture(FIXTURES, "agentgateway/anthropic/basic.json")
        assert body == (gzip_bytes(expected) if gz == "1" else expected)


def test_stream_reaches_client_byte_for_byte(envoy, tag):
    request = {"model": "gpt-5-nano", "stream": True, "stream_options": {"include_usage": True}}
    for gz in (False, True):
        status, hdrs, body = raw_post(envoy, "/v1/chat/completions", request,
                                      {"x-llm-customer": tag, "x-mock-gzip": "1" if gz else "0"})
        assert status == 200
        assert hdrs["content-type"] == "text/event-stream"
        assert body == stream_bytes(FIXTURES, "agentgateway/completions/stream.json", gz)


def test_upstream_sees_no_accept_encoding(envoy, mock, tag):
    # Compressed responses cost a decompression per chunk; the filter asks for identity.
    raw_post(envoy, "/v1/chat/completions", {"model": "gpt-5-nano"},
             {"x-llm-customer": tag, "accept-encoding": "gzip, deflate"})
    seen = mock.last_request()["headers"]
    assert seen.get("x-llm-customer") == tag
    assert "accept-encoding" not in seen


def passthrough_count(envoy) -> float:
    return metric_sum(envoy.prometheus(), "tokenmeter_unrecognized_requests_total")


def test_non_llm_path_passes_untouched_and_is_counted(envoy, tag):
    before = passthrough_count(envoy)
    conn = http.client.HTTPConnection("127.0.0.1", envoy.listener_port, timeout=10)
    conn.request("GET", "/static/index.html?customer=" + tag,
                 headers={"accept-encoding": "gzip", "x-llm-customer": tag})
    resp = conn.getresponse()
    assert resp.status == 200
    assert resp.read() == b"hello from the mock upstream\n"
    conn.close()
    entry = envoy.wait_entry(lambda e: e.get("path", "").endswith("customer=" + tag))
    assert entry["gen_ai.provider.name"] is None  # no filter state: not metered
    assert entry["llm.record"] is None
    wait_until(lambda: passthrough_count(envoy) == before + 1, 5, "passthrough counter")


def test_client_disconnect_mid_stream_is_still_recorded(envoy, tag):
    body = json.dumps({"model": "gpt-5-nano", "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: llm\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\nx-llm-customer: {tag}\r\nx-llm-feature: e2e\r\n".encode()
        + b"x-mock-delay-ms: 400\r\nx-mock-chunks: 6\r\n\r\n" + body
    )
    with socket.create_connection(("127.0.0.1", envoy.listener_port), timeout=10) as s:
        s.sendall(request)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
    # The usage chunk never arrived: on_log still publishes what is known.
    entry = envoy.wait_entry(lambda e: e.get("llm.customer") == tag, timeout=15)
    assert entry["gen_ai.provider.name"] == "openai"
    assert entry["gen_ai.request.model"] == "gpt-5-nano"
    assert entry["llm.usage_source"] in ("estimated", "missing")
    prom = envoy.prometheus()
    assert metric_sum(prom, "tokenmeter_requests_total", customer=tag) == 1


def test_panic_is_logged_and_the_vm_reloads(panic_envoy, tag):
    conn = http.client.HTTPConnection("127.0.0.1", panic_envoy.listener_port, timeout=10)
    try:
        conn.request("GET", "/anything", headers={"x-tokenmeter-test-panic": "1"})
        status = conn.getresponse().status
        assert status >= 500
    except (ConnectionError, http.client.HTTPException):
        pass  # a reset is an acceptable way for the crashed request to end
    finally:
        conn.close()
    assert "panic" in wait_until(
        lambda: "x-tokenmeter-test-panic" in panic_envoy.envoy_log() and panic_envoy.envoy_log(),
        10, "panic line in the Envoy log")

    # FAIL_RELOAD: a fresh VM serves and meters the next requests.
    def metered_ok():
        status, _, _ = raw_post(panic_envoy, "/v1/embeddings",
                                {"model": "text-embedding-3-small", "input": "x"},
                                {"x-llm-customer": tag, "x-llm-feature": "e2e"})
        return status == 200
    wait_until(metered_ok, 20, "a request served after the VM reload", 0.5)
    entry = panic_envoy.wait_entry(lambda e: e.get("llm.customer") == tag
                                   and e.get("response_code") == 200)
    assert entry["gen_ai.usage.input_tokens"] == "8"
