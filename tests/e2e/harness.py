"""Start and talk to the real Envoy + the mock upstream, for the e2e tests and `make run`.

Envoy is configured from the shipped envoy/bootstrap.yaml, with only what a test must change
patched in (ports, paths, plugin configuration), so the tests exercise the config users run.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import yaml

REPO = Path(__file__).resolve().parents[2]
ENVOY = REPO / ".venv" / "bin" / "envoy"
PYTHON = REPO / ".venv" / "bin" / "python"
WASM = REPO / "build" / "tokenmeter.wasm"
WASM_TEST = REPO / "build" / "tokenmeter-test.wasm"
BOOTSTRAP = REPO / "envoy" / "bootstrap.yaml"
FIXTURES = REPO.parent / "shared" / "fixtures"
MOCK = REPO / "tests" / "mock_upstream" / "server.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last error: {last!r})")


def http_get(url: str, timeout: float = 5) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


@dataclass
class Mock:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def last_request(self) -> dict:
        return json.loads(http_get(self.url + "/__mock/last-request"))

    def stop(self) -> None:
        stop_process(self.proc)


def start_mock(port: int | None = None, fixtures: Path = FIXTURES) -> Mock:
    if not fixtures.is_dir():
        raise RuntimeError(f"fixtures not found at {fixtures} (expected ../shared/fixtures)")
    port = port or free_port()
    proc = subprocess.Popen(
        [str(PYTHON if PYTHON.exists() else sys.executable), str(MOCK), "--port", str(port),
         "--fixtures", str(fixtures)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    mock = Mock(port, proc)
    try:
        wait_until(lambda: http_get(mock.url + "/__mock/health", 1) == b"ok\n", 15, "mock upstream")
    except TimeoutError:
        mock.stop()
        raise
    return mock


def bootstrap_config(*, listener_port: int, admin_port: int, upstream_port: int,
                     access_log: Path, wasm: Path, plugin_config: str = "{}",
                     extra_clusters: list[dict] | None = None) -> dict:
    """envoy/bootstrap.yaml with test ports and paths patched in (plus any extra clusters,
    e.g. the limits endpoint the budget tests pull from)."""
    config = yaml.safe_load(BOOTSTRAP.read_text())
    config["admin"]["address"]["socket_address"]["port_value"] = admin_port
    listener = config["static_resources"]["listeners"][0]
    listener["address"]["socket_address"]["port_value"] = listener_port
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["access_log"][0]["typed_config"]["path"] = str(access_log)
    for f in hcm["http_filters"]:
        if f["name"] == "tokenmeter":
            wasm_config = f["typed_config"]["config"]
            wasm_config["vm_config"]["code"]["local"]["filename"] = str(wasm)
            wasm_config["configuration"]["value"] = plugin_config
    cluster = config["static_resources"]["clusters"][0]
    endpoint = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    endpoint["address"]["socket_address"]["port_value"] = upstream_port
    config["static_resources"]["clusters"].extend(extra_clusters or [])
    return config


def static_cluster(name: str, port: int) -> dict:
    """A plain HTTP/1.1 cluster to 127.0.0.1:port."""
    return {
        "name": name, "type": "STATIC", "connect_timeout": "1s",
        "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}]}]},
    }


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


_base_ids = iter(range(200 + (os.getpid() % 500) * 8, 10_000))


@dataclass
class Envoy:
    listener_port: int
    admin_port: int
    access_log: Path
    proc: subprocess.Popen
    log_path: Path
    _log_offset: int = field(default=0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def stop(self) -> None:
        stop_process(self.proc)

    def prometheus(self) -> str:
        return http_get(self.admin + "/stats/prometheus").decode()

    def stats(self, prefix: str = "") -> dict[str, str]:
        out = {}
        for line in http_get(self.admin + "/stats").decode().splitlines():
            name, _, value = line.partition(": ")
            if name.startswith(prefix):
                out[name] = value
        return out

    def access_entries(self) -> list[dict]:
        if not self.access_log.exists():
            return []
        return [json.loads(l) for l in self.access_log.read_text().splitlines() if l.strip()]

    def wait_entry(self, predicate, timeout: float = 10) -> dict:
        """The first access-log entry matching `predicate` (the file is flushed every 200 ms)."""
        def find():
            for entry in self.access_entries():
                if predicate(entry):
                    return entry
            return None
        return wait_until(find, timeout, "access log entry")

    def envoy_log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def start_envoy(workdir: Path, upstream_port: int, *, wasm: Path = WASM,
                plugin_config: str = "{}", extra_clusters: list[dict] | None = None,
                mutate: Callable[[dict], None] | None = None) -> Envoy:
    """A real Envoy on free ports with the shipped bootstrap; `mutate` may edit the parsed
    config first (extra filters, routes, log fields) so that a suite adds only what it needs."""
    if not wasm.exists():
        raise RuntimeError(f"{wasm} is missing: run `make build` (and `make build-test`)")
    workdir.mkdir(parents=True, exist_ok=True)
    listener_port, admin_port = free_port(), free_port()
    access_log = workdir / "access.log"
    config = bootstrap_config(listener_port=listener_port, admin_port=admin_port,
                              upstream_port=upstream_port, access_log=access_log, wasm=wasm,
                              plugin_config=plugin_config, extra_clusters=extra_clusters)
    if mutate:
        mutate(config)
    config_path = workdir / "envoy.yaml"
    config_path.write_text(yaml.safe_dump(config))
    log_path = workdir / "envoy.log"
    proc = subprocess.Popen(
        [str(ENVOY), "-c", str(config_path), "--concurrency", "2",
         "--base-id", str(next(_base_ids)), "--file-flush-interval-msec", "200",
         "--log-level", "info", "--log-path", str(log_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir,
    )
    envoy = Envoy(listener_port, admin_port, access_log, proc, log_path)

    def ready():
        if proc.poll() is not None:
            raise RuntimeError(f"envoy exited with {proc.returncode}:\n{envoy.envoy_log()[-3000:]}")
        return http_get(envoy.admin + "/ready", 1).strip() == b"LIVE"

    try:
        wait_until(ready, 30, "envoy readiness", 0.1)
    except Exception:
        envoy.stop()
        raise
    return envoy


def validate(config_path: Path, base_id: int | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ENVOY), "--mode", "validate", "-c", str(config_path),
         "--base-id", str(base_id if base_id is not None else next(_base_ids))],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )


# --- Prometheus text format --------------------------------------------------------------

_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str) -> list[tuple[str, dict[str, str], float]]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        samples.append((m.group(1), labels, float(m.group(3))))
    return samples


def metric_sum(text: str, name: str, **labels: str) -> float:
    """Sum of `name` over every series whose labels include `labels`."""
    return sum(v for n, l, v in parse_prometheus(text)
               if n == name and all(l.get(k) == want for k, want in labels.items()))


def assert_tokens(entry: dict, tokens: tuple[int, int, int, int, int]) -> None:
    """The five token counts of an access-log entry, as plain decimal strings: input, output,
    cache read, cache creation, reasoning."""
    inp, out, cache_read, cache_creation, reasoning = tokens
    assert entry["gen_ai.usage.input_tokens"] == str(inp)
    assert entry["gen_ai.usage.output_tokens"] == str(out)
    assert entry["gen_ai.usage.cache_read.input_tokens"] == str(cache_read)
    assert entry["gen_ai.usage.cache_creation.input_tokens"] == str(cache_creation)
    assert entry["gen_ai.usage.reasoning.output_tokens"] == str(reasoning)


TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation", "reasoning")


# --- One metered request and its record, for the provider suites -------------------------

def post(envoy: Envoy, path: str, body: dict, tag: str, **headers: str) -> tuple[int, dict, bytes]:
    """One POST through Envoy; returns status, headers and the exact body bytes received. A
    `Host` header is sent as given (Envoy forwards it as the :authority the filter sees)."""
    conn = http.client.HTTPConnection("127.0.0.1", envoy.listener_port, timeout=15)
    raw = json.dumps(body).encode()
    conn.request("POST", path, body=raw, headers={
        "content-type": "application/json", "x-llm-customer": tag, "x-llm-feature": "e2e",
        "x-llm-user": "u-" + tag, **headers})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data


def check(envoy: Envoy, tag: str, *, provider, request_model, response_model, tokens, cost_usd,
          cost_nanousd, label_model=None, operation="chat") -> dict:
    """Asserts the access-log line and the series of the request tagged `tag`: provider,
    operation, models, the five token counts (log and `tokenmeter_tokens_total`), reported
    usage and the cost. Metric series are labelled with the priced (canonical) model,
    `label_model`, when it differs from the requested id. An unpriced request has
    `cost_usd=""` and no cost series (`cost_nanousd=0`)."""
    entry = envoy.wait_entry(lambda e: e.get("llm.customer") == tag)
    assert entry["gen_ai.provider.name"] == provider
    assert entry["gen_ai.operation.name"] == operation
    assert entry["gen_ai.request.model"] == request_model
    if response_model is not None:
        assert entry["gen_ai.response.model"] == response_model
    assert_tokens(entry, tokens)
    assert entry["llm.usage_source"] == "reported"
    assert entry["llm.cost_usd"] == cost_usd
    labels = dict(gen_ai_provider_name=provider, gen_ai_request_model=label_model or request_model,
                  feature="e2e", customer=tag)
    assert_series(envoy.prometheus(), labels, tokens, cost_nanousd)
    return entry


def assert_series(prom: str, labels: dict[str, str], tokens: tuple[int, int, int, int, int],
                  cost_nanousd: int) -> None:
    """The series of one request: one `tokenmeter_requests_total`, each token type's count in
    `tokenmeter_tokens_total` (in the order of `assert_tokens`), and the cost in nano-USD."""
    assert metric_sum(prom, "tokenmeter_requests_total", **labels) == 1
    for token_type, count in zip(TOKEN_TYPES, tokens):
        got = metric_sum(prom, "tokenmeter_tokens_total", gen_ai_token_type=token_type, **labels)
        assert got == count, f"{token_type}: {got} != {count}"
    assert metric_sum(prom, "tokenmeter_cost_nanousd_total", **labels) == cost_nanousd
