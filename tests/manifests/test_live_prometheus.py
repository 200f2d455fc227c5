"""A real Prometheus scrapes a fake Envoy that serves every metric in the contract. Then:
every alert rule evaluates without error, and every dashboard query runs without error.
Parsing cannot find evaluation-time failures such as many-to-many vector matches; this test
can. It is also the worked example of feeding dashboard_queries to a live server.

Skipped when no `prometheus` binary is installed (Debian package `prometheus`)."""

from __future__ import annotations

import http.server
import sys
import threading
import time

import pytest
import yaml

import contract
import dashboard_queries as dq
from conftest import ENVOY_DIR, REPO

# The Prometheus starter is shared with the e2e suite (tests/prometheus_server.py).
sys.path.insert(0, str(REPO))
from tests.e2e.harness import wait_until  # noqa: E402
from tests.prometheus_server import PROMETHEUS, start_prometheus  # noqa: E402

VALUES = {
    "gen_ai_provider_name": ["openai", "anthropic"],
    "gen_ai_request_model": ["gpt-4o", "claude-sonnet-4"],
    "gen_ai_operation_name": ["chat", "chat"],
    "feature": ["search", "support"],
    "customer": ["acme", "globex"],
    "http_status_class": ["2xx", "5xx"],
    "retry_source": ["client", "proxy"],
    "budget": ["team-a", "team-b"],
    "decision": ["allowed", "rejected"],
    "dimension": ["feature", "customer"],
}
TOKEN_TYPES = ["input", "output", "cache_read", "cache_creation", "reasoning"]
BUCKETS = [1, 4, 16, 64, 256, 1024, 4096]


class FakeEnvoy:
    """Serves /stats/prometheus in Envoy's exposition format; counters grow per scrape."""

    def __init__(self):
        self.scrapes = 0

    def render(self) -> str:
        self.scrapes += 1
        n = self.scrapes
        out = []
        for m in contract.metrics().values():
            out.append(f"# TYPE {m.name} {m.type}")
            types = TOKEN_TYPES if "gen_ai_token_type" in m.labels else [None]
            for i, t in ((i, t) for i in range(2) for t in types):
                values = {l: (t if l == "gen_ai_token_type" else VALUES[l][i]) for l in m.labels}
                labels = ",".join(f'{l}="{v}"' for l, v in values.items())
                if m.type == "counter":
                    out.append(f"{m.name}{{{labels}}} {n * (i + 1) * 7}")
                elif m.type == "gauge":
                    out.append(f"{m.name}{{{labels}}} {850 + 100 * i}")
                else:
                    sep = "," if labels else ""
                    for j, le in enumerate(BUCKETS):
                        out.append(f'{m.name}_bucket{{{labels}{sep}le="{le}"}} {n * (j + 1)}')
                    out.append(f'{m.name}_bucket{{{labels}{sep}le="+Inf"}} {n * (len(BUCKETS) + 1)}')
                    out.append(f"{m.name}_sum{{{labels}}} {n * 1000}")
                    out.append(f"{m.name}_count{{{labels}}} {n * (len(BUCKETS) + 1)}")
        return "\n".join(out) + "\n"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    if PROMETHEUS is None:
        pytest.skip("no prometheus binary (apt-get install -y prometheus)")
    tmp = tmp_path_factory.mktemp("prom")
    fake = FakeEnvoy()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = fake.render().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        prom = start_prometheus(tmp, server.server_address[1], timeout=60)
    except Exception:
        server.shutdown()
        raise
    try:
        # Rates and increases need several scrapes of growing counters.
        wait_until(lambda: prom.api("query", query="count(tokenmeter_requests_total)")["data"]["result"]
                   and fake.scrapes >= 8, 60, "prometheus scraping the fake Envoy", 0.5)
        time.sleep(2)  # let the rule groups evaluate on the data
        yield prom
    finally:
        prom.stop()
        server.shutdown()


def test_every_dashboard_query_evaluates(prometheus):
    empty = []
    for q in dq.queries(rate_interval="5s", interval="1s", range_="10s"):
        r = prometheus.api("query", query=q.expr)
        assert r["status"] == "success", (q.panel, q.ref_id, r)
        assert not r.get("warnings"), (q.panel, r["warnings"])
        if not r["data"]["result"] and "offset 1w" not in q.expr:
            empty.append(q.panel)
    # Every current-data panel shows something when every metric exists.
    assert empty == [], empty


def test_every_rule_evaluates(prometheus):
    groups = prometheus.api("rules")["data"]["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == sum(len(g["rules"]) for g in yaml.safe_load((ENVOY_DIR / "prometheus" / "rules.yml").read_text())["groups"])
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    # The fake budget gauges sit at 85 % and 95 %: the near-exhaustion rule sees them.
    [near] = [r for r in rules if r["name"] == "TokenmeterBudgetNearlyExhausted"]
    assert {a["labels"]["budget"] for a in near["alerts"]} == {"team-a", "team-b"}
