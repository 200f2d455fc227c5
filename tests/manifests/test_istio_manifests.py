"""The Istio manifests in envoy/istio/ validate against Istio's CRD schemas, with the unknown
field rejection and CEL rules Kubernetes applies (see k8s_schema.py), and agree with each
other where the schema cannot look (pluginConfig, EnvoyFilter patch values)."""

from __future__ import annotations

import copy
import json

import pytest

from conftest import ENVOY_DIR, load_yaml_docs
from k8s_schema import Schemas, crd_path

ISTIO_DIR = ENVOY_DIR / "istio"
CRD_MANIFESTS = ["wasmplugin.yaml", "envoyfilter.yaml", "egress-gateway.yaml"]


@pytest.fixture(scope="module")
def schemas() -> Schemas:
    path = crd_path()
    if not path.is_file():
        pytest.fail(f"Istio CRD bundle not found at {path}; set ISTIO_CRDS")
    return Schemas(path)


def _docs(name):
    return load_yaml_docs(ISTIO_DIR / name)


def _one(name, kind):
    docs = [d for d in _docs(name) if d["kind"] == kind]
    assert len(docs) == 1, f"{name}: expected one {kind}"
    return docs[0]


@pytest.mark.parametrize("name", CRD_MANIFESTS)
def test_manifest_validates_against_istio_crd(schemas, name):
    docs = _docs(name)
    assert docs, f"{name} is empty"
    for doc in docs:
        assert schemas.errors(doc) == [], f"{name}: {doc['kind']}/{doc['metadata']['name']}"


# --- The validator must be able to fail: each mutation below is a real mistake. ---

def _wasmplugin():
    return copy.deepcopy(_one("wasmplugin.yaml", "WasmPlugin"))


def _envoyfilter():
    return copy.deepcopy(_one("envoyfilter.yaml", "EnvoyFilter"))


def _typo_field(doc):
    doc["spec"]["failStratgy"] = doc["spec"].pop("failStrategy")


def _bad_enum(doc):
    doc["spec"]["phase"] = "STAT"


def _bad_scheme(doc):
    doc["spec"]["url"] = "ftp://example.invalid/tokenmeter.wasm"


def _selector_and_target(doc):
    doc["spec"]["targetRefs"] = [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "egress"}]


def _wrong_version(doc):
    doc["apiVersion"] = "extensions.istio.io/v1beta9"


def _typo_in_match(doc):
    doc["spec"]["match"][0]["mdoe"] = doc["spec"]["match"][0].pop("mode")


def _metadata_typo(doc):
    doc["metadata"]["namespce"] = doc["metadata"].pop("namespace")


@pytest.mark.parametrize(
    "mutate",
    [_typo_field, _bad_enum, _bad_scheme, _selector_and_target, _wrong_version, _typo_in_match, _metadata_typo],
)
def test_validator_rejects_broken_wasmplugin(schemas, mutate):
    doc = _wasmplugin()
    assert schemas.errors(doc) == []
    mutate(doc)
    assert schemas.errors(doc), f"{mutate.__name__} was accepted"


def _ef_typo_apply_to(doc):
    doc["spec"]["configPatches"][0]["applyTo"] = "HTTP_FILTERS"


def _ef_typo_operation_field(doc):
    doc["spec"]["configPatches"][0]["patch"]["operaton"] = doc["spec"]["configPatches"][0]["patch"].pop("operation")


def _ef_waypoint_without_context(doc):
    doc["spec"]["configPatches"][0]["match"]["waypoint"] = {"portNumber": 80}


@pytest.mark.parametrize("mutate", [_ef_typo_apply_to, _ef_typo_operation_field, _ef_waypoint_without_context])
def test_validator_rejects_broken_envoyfilter(schemas, mutate):
    doc = _envoyfilter()
    assert schemas.errors(doc) == []
    mutate(doc)
    assert schemas.errors(doc), f"{mutate.__name__} was accepted"


def test_schema_does_not_look_inside_preserved_payloads(schemas):
    """Documents where the CRD stops enforcing: typos under pluginConfig and patch.value
    pass the schema (Kubernetes accepts them too). The tests below and
    test_stats_config.py cover those payloads instead."""
    wp = _wasmplugin()
    wp["spec"]["pluginConfig"]["attributon"] = {}
    assert schemas.errors(wp) == []
    ef = _envoyfilter()
    ef["spec"]["configPatches"][0]["patch"]["value"]["typed_confg"] = {}
    assert schemas.errors(ef) == []


# --- What the schema cannot check ---

def _http_filter_patch():
    patches = _envoyfilter()["spec"]["configPatches"]
    [p] = [p for p in patches if p["applyTo"] == "HTTP_FILTER"]
    return p


def test_plugin_config_is_identical_in_both_paths():
    wp = _wasmplugin()["spec"]["pluginConfig"]
    cfg = _http_filter_patch()["patch"]["value"]["typed_config"]["config"]
    assert cfg["configuration"]["@type"] == "type.googleapis.com/google.protobuf.StringValue"
    assert json.loads(cfg["configuration"]["value"]) == wp


def test_plugin_config_uses_default_attribution_headers():
    attribution = _wasmplugin()["spec"]["pluginConfig"]["attribution"]
    assert attribution["feature_header"] == "x-llm-feature"
    assert attribution["customer_header"] == "x-llm-customer"
    assert attribution["user_header"] == "x-llm-user"


def test_failure_policy_is_fail_reload_everywhere():
    assert _wasmplugin()["spec"]["failStrategy"] == "FAIL_RELOAD"
    cfg = _http_filter_patch()["patch"]["value"]["typed_config"]["config"]
    assert cfg["failure_policy"] == "FAIL_RELOAD"


def test_wasm_filter_goes_before_the_router():
    p = _http_filter_patch()
    assert p["patch"]["operation"] == "INSERT_BEFORE"
    assert p["match"]["listener"]["filterChain"]["filter"]["subFilter"]["name"] == "envoy.filters.http.router"
    assert p["patch"]["value"]["typed_config"]["@type"] == "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"


def test_wasmplugin_phase_reads_bodies_after_authz():
    spec = _wasmplugin()["spec"]
    assert spec["phase"] == "STATS"
    assert spec["type"] == "HTTP"
    assert spec["pluginName"] == _http_filter_patch()["patch"]["value"]["typed_config"]["config"]["root_id"]


def test_both_paths_select_the_same_workload():
    wp = _wasmplugin()["spec"]["selector"]["matchLabels"]
    ef = _envoyfilter()["spec"]["workloadSelector"]["labels"]
    assert wp == ef
    gw = [d for d in _docs("egress-gateway.yaml") if d["kind"] == "Gateway"]
    assert all(g["spec"]["selector"] == wp for g in gw)


def test_egress_routes_cover_every_gateway_host():
    docs = _docs("egress-gateway.yaml")
    [gateway] = [d for d in docs if d["kind"] == "Gateway"]
    hosts = {h for s in gateway["spec"]["servers"] for h in s["hosts"]}
    vs_hosts = {h for d in docs if d["kind"] == "VirtualService" for h in d["spec"]["hosts"]}
    tls_hosts = {d["spec"]["host"] for d in docs if d["kind"] == "DestinationRule"
                 and d["spec"].get("trafficPolicy", {}).get("portLevelSettings")}
    [se] = [d for d in docs if d["kind"] == "ServiceEntry"]
    assert hosts == vs_hosts == tls_hosts == set(se["spec"]["hosts"])
