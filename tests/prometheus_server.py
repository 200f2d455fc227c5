"""A real Prometheus for the tests that need one: it scrapes one `/stats/prometheus` endpoint
every second and evaluates the shipped alert rules (envoy/prometheus/rules.yml) on it.

Both users start it the same way, so the scrape settings, the rules and the readiness check
live here once: tests/e2e/test_prometheus.py points it at a real Envoy's admin port,
tests/manifests/test_live_prometheus.py at a fake Envoy serving every metric in the contract.
Its log goes to `prometheus.log` in the work directory, and startup failures quote its tail.

Needs the Debian `prometheus` binary; callers skip when `PROMETHEUS` is None.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import yaml

from tests.e2e.harness import REPO, free_port, http_get, stop_process, wait_until

PROMETHEUS = shutil.which("prometheus")
RULES = REPO / "envoy" / "prometheus" / "rules.yml"


@dataclass
class Prometheus:
    base: str
    proc: subprocess.Popen
    log: IO[bytes]
    workdir: Path

    def api(self, path: str, timeout: float = 10, **params) -> dict:
        """GET `/api/v1/<path>` with query parameters; the decoded JSON answer."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        return json.loads(http_get(f"{self.base}/api/v1/{path}{query}", timeout=timeout))

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


def start_prometheus(workdir: Path, target_port: int, *, timeout: float = 30) -> Prometheus:
    """Starts Prometheus scraping `127.0.0.1:<target_port>/stats/prometheus` with the shipped
    rules, and returns once the target is up (scraped at least once)."""
    if PROMETHEUS is None:
        raise RuntimeError("no prometheus binary (apt-get install -y prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(RULES, workdir / "rules.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["rules.yml"],
        "scrape_configs": [{
            "job_name": "envoy",
            "metrics_path": "/stats/prometheus",
            "static_configs": [{"targets": [f"127.0.0.1:{target_port}"]}],
        }],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed by Prometheus.stop
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={workdir / 'prometheus.yml'}",
         f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
    )
    prom = Prometheus(f"http://127.0.0.1:{port}", proc, log, workdir)

    def target_up() -> bool:
        if proc.poll() is not None:
            raise RuntimeError((workdir / "prometheus.log").read_text()[-3000:])
        return any(t["health"] == "up" for t in prom.api("targets", timeout=1)["data"]["activeTargets"])

    try:
        wait_until(target_up, timeout, f"prometheus scraping 127.0.0.1:{target_port}", 0.2)
    except Exception:
        prom.stop()
        raise
    return prom
