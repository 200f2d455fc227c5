"""Fixtures for the end-to-end suite: a real Envoy 1.40 running the optimised filter in front
of the mock upstream, on random free ports in a temp dir, torn down at the end."""

from __future__ import annotations

import uuid

import pytest

# The harness holds shared assertions (assert_tokens): let pytest explain their failures too.
pytest.register_assert_rewrite("tests.e2e.harness")

from .harness import WASM_TEST, start_envoy, start_mock


@pytest.fixture(scope="session")
def mock():
    m = start_mock()
    yield m
    m.stop()


@pytest.fixture(scope="session")
def envoy(mock, tmp_path_factory):
    e = start_envoy(tmp_path_factory.mktemp("envoy"), mock.port)
    yield e
    e.stop()


@pytest.fixture(scope="module")
def panic_envoy(mock, tmp_path_factory):
    """Envoy running the build with the `test-panic` feature."""
    e = start_envoy(tmp_path_factory.mktemp("envoy-panic"), mock.port, wasm=WASM_TEST)
    yield e
    e.stop()


@pytest.fixture
def tag():
    """A customer id unique to the test, so its metric series and log lines are its own."""
    return "c" + uuid.uuid4().hex[:10]
