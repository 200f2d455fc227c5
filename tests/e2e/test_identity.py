"""End-to-end abuse cases: identity from a trusted source cannot be forged with a header, API
keys never reach logs or metrics, and 10,000 random customer ids cannot blow up the metrics.

The trusted source here is Envoy's own `jwt_authn` filter, placed before tokenmeter with an
inline HS256 JWKS (`oct` key), so the JWTs are signed with the standard library alone. The
filter writes the verified payload to dynamic metadata (`payload_in_metadata`), where the
`jwt_claim` attribution source reads it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import string
import threading
import time

import pytest

from .custom_envoy import add_log_fields, hcm, start_custom_envoy
from .harness import http_get, metric_sum, parse_prometheus

SECRET = b"tokenmeter-e2e-hs256-secret-0123456789abcdef"
ISSUER = "https://issuer.tokenmeter.test"
SALT = "e2e-api-key-salt-0123456789"
PLUGIN = json.dumps({"attribution": {
    "customer_from": [{"jwt_claim": "org"}],
    "strip_headers": True,
    "api_key_salt": SALT,
}})


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_jwt(claims: dict, secret: bytes = SECRET) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    payload = b64url(json.dumps({"iss": ISSUER, "exp": int(time.time()) + 3600, **claims}).encode())
    signature = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url(signature)}"


def with_jwt_authn(config: dict) -> None:
    jwks = json.dumps({"keys": [{"kty": "oct", "alg": "HS256", "kid": "k1", "k": b64url(SECRET)}]})
    jwt_filter = {
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"test": {
                "issuer": ISSUER,
                "local_jwks": {"inline_string": jwks},
                # The JWT has its own header, so Authorization can carry a provider API key.
                "from_headers": [{"name": "x-jwt-assertion"}],
                "payload_in_metadata": "jwt_payload",
            }},
            # No JWT: allowed (and attributed to the default); a bad JWT: 401.
            "rules": [{"match": {"prefix": "/"}, "requires": {"requires_any": {"requirements": [
                {"provider_name": "test"}, {"allow_missing": {}}]}}}],
        },
    }
    hcm(config)["http_filters"].insert(0, jwt_filter)
    add_log_fields(config, {"llm.api_key_id": "%FILTER_STATE(wasm.llm.api_key_id:PLAIN)%"})


@pytest.fixture(scope="module")
def jwt_envoy(mock, tmp_path_factory):
    e = start_custom_envoy(tmp_path_factory.mktemp("envoy-jwt"), mock.port,
                           plugin_config=PLUGIN, mutate=with_jwt_authn)
    yield e
    e.stop()


def post(envoy, path: str, headers: dict, body: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", envoy.listener_port, timeout=30)
    try:
        conn.request("POST", path, body=json.dumps(body or {"model": "gpt-5-nano"}),
                     headers={"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def customers_charged(envoy, *names: str) -> dict[str, float]:
    prom = envoy.prometheus()
    return {n: metric_sum(prom, "tokenmeter_requests_total", customer=n) for n in names}


def test_a_forged_customer_header_cannot_charge_another_customer(jwt_envoy, mock, tag):
    org, victim = "org-" + tag, "victim-" + tag
    status, _ = post(jwt_envoy, "/v1/chat/completions", {
        "x-jwt-assertion": sign_jwt({"org": org, "sub": "alice"}),
        "x-llm-customer": victim, "x-llm-feature": "search", "x-llm-user": "mallory"})
    assert status == 200
    entry = jwt_envoy.wait_entry(lambda e: e.get("llm.customer") in (org, victim))
    assert entry["llm.customer"] == org
    # Dimensions without trusted sources still come from their headers.
    assert (entry["llm.feature"], entry["llm.user"]) == ("search", "mallory")
    assert customers_charged(jwt_envoy, org, victim) == {org: 1, victim: 0}
    # strip_headers: the upstream never sees the client's attribution headers.
    seen = mock.last_request()["headers"]
    assert not {"x-llm-customer", "x-llm-feature", "x-llm-user"} & {k.lower() for k in seen}


def test_without_a_jwt_the_forged_header_is_ignored(jwt_envoy, tag):
    victim = "victim-" + tag
    status, _ = post(jwt_envoy, "/v1/chat/completions",
                     {"x-llm-customer": victim, "x-llm-feature": tag})
    assert status == 200
    entry = jwt_envoy.wait_entry(lambda e: e.get("llm.feature") == tag)
    assert entry["llm.customer"] == "unknown"
    assert customers_charged(jwt_envoy, victim) == {victim: 0}


def test_a_jwt_signed_with_another_key_is_refused_and_charges_nobody(jwt_envoy, tag):
    victim = "victim-" + tag
    status, _ = post(jwt_envoy, "/v1/chat/completions", {
        "x-jwt-assertion": sign_jwt({"org": victim}, secret=b"attacker-key-" + b"x" * 32),
        "x-llm-customer": victim})
    assert status == 401
    time.sleep(0.5)
    assert customers_charged(jwt_envoy, victim) == {victim: 0}


def test_api_keys_never_reach_logs_or_metrics_and_a_salted_id_stands_in(jwt_envoy, tag):
    alphabet = string.ascii_letters + string.digits
    openai_key = "sk-proj-" + "".join(random.choices(alphabet, k=40))
    anthropic_key = "sk-ant-api03-" + "".join(random.choices(alphabet, k=40))
    org = "org-" + tag
    jwt = sign_jwt({"org": org})
    assert post(jwt_envoy, "/v1/chat/completions", {
        "x-jwt-assertion": jwt, "authorization": f"Bearer {openai_key}", "x-llm-feature": tag + "-o"})[0] == 200
    assert post(jwt_envoy, "/v1/messages", {
        "x-jwt-assertion": jwt, "x-api-key": anthropic_key, "x-llm-feature": tag + "-a",
        "anthropic-version": "2023-06-01"},
        {"model": "claude-haiku-4-5", "max_tokens": 8})[0] == 200
    openai_entry = jwt_envoy.wait_entry(lambda e: e.get("llm.feature") == tag + "-o")
    anthropic_entry = jwt_envoy.wait_entry(lambda e: e.get("llm.feature") == tag + "-a")

    def key_id(key: str) -> str:
        return hmac.new(SALT.encode(), key.encode(), hashlib.sha256).hexdigest()[:16]
    assert openai_entry["llm.api_key_id"] == key_id(openai_key)
    assert anthropic_entry["llm.api_key_id"] == key_id(anthropic_key)

    time.sleep(0.5)  # the access log flushes every 200 ms
    places = {
        "access log": jwt_envoy.access_log.read_text(),
        "/stats": http_get(jwt_envoy.admin + "/stats").decode(),
        "/stats/prometheus": jwt_envoy.prometheus(),
        "envoy log": jwt_envoy.envoy_log(),
    }
    for key in (openai_key, anthropic_key):
        for where, text in places.items():
            # The secret part alone must not appear either (e.g. a log that cut the prefix).
            assert key[-40:] not in text, f"API key leaked into the {where}"


# --- metric cardinality -----------------------------------------------------------------

CAP = 50
IDS = 10_000
CHAT_BODY = json.dumps({
    "id": "chatcmpl-card", "object": "chat.completion", "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})


def with_direct_response(config: dict) -> None:
    # Envoy answers itself: 10,000 requests cost no upstream round trip, and the filter still
    # meters the response exactly as it would an upstream one.
    host = hcm(config)["route_config"]["virtual_hosts"][0]
    host["routes"] = [{
        "match": {"prefix": "/"},
        "direct_response": {"status": 200, "body": {"inline_string": CHAT_BODY}},
        "response_headers_to_add": [{"header": {"key": "content-type", "value": "application/json"},
                                     "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}],
    }]


@pytest.fixture(scope="module")
def capped_envoy(tmp_path_factory):
    e = start_custom_envoy(tmp_path_factory.mktemp("envoy-cap"), 9,  # no upstream needed
                           plugin_config=json.dumps({"metrics": {"max_label_values": CAP}}),
                           mutate=with_direct_response)
    yield e
    e.stop()


def test_ten_thousand_random_customers_stay_under_the_label_cap(capped_envoy):
    def send(conn: http.client.HTTPConnection, customer: str) -> int:
        conn.request("POST", "/v1/chat/completions", body='{"model":"gpt-4o-mini"}',
                     headers={"content-type": "application/json", "x-llm-customer": customer})
        resp = conn.getresponse()
        resp.read()
        return resp.status

    # One request first, alone: the shared label set then exists, so no two VMs race to
    # create it (a documented one-value overshoot).
    warm = http.client.HTTPConnection("127.0.0.1", capped_envoy.listener_port, timeout=30)
    assert send(warm, "warmup") == 200
    warm.close()

    ids = [f"cust-{random.getrandbits(64):016x}" for _ in range(IDS)]
    failures: list[str] = []

    def worker(chunk: list[str]):
        conn = http.client.HTTPConnection("127.0.0.1", capped_envoy.listener_port, timeout=30)
        try:
            for customer in chunk:
                if send(conn, customer) != 200:
                    failures.append(customer)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(ids[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures

    total = IDS + 1

    def requests_by_customer() -> dict[str, float]:
        out: dict[str, float] = {}
        for name, labels, value in parse_prometheus(capped_envoy.prometheus()):
            if name == "tokenmeter_requests_total":
                out[labels["customer"]] = out.get(labels["customer"], 0) + value
        return out

    deadline = time.monotonic() + 10
    while sum(requests_by_customer().values()) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    by_customer = requests_by_customer()
    assert sum(by_customer.values()) == total
    prom = capped_envoy.prometheus()
    labels = {l["customer"] for n, l, _ in parse_prometheus(prom)
              if n.startswith("tokenmeter_") and "customer" in l}
    assert len(labels) <= CAP + 1, f"{len(labels)} distinct customer labels"
    assert "other" in labels
    admitted = len(labels - {"other"})
    assert admitted == CAP
    overflow = metric_sum(prom, "tokenmeter_label_overflow_total", dimension="customer")
    assert overflow == by_customer["other"] == total - admitted
