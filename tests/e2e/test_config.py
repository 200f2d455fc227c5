"""End-to-end: the shipped configs load, and a bad plugin configuration is refused at load
time with the offending field named."""

from __future__ import annotations

import yaml

from .harness import BOOTSTRAP, WASM, bootstrap_config, free_port, validate


def write_config(tmp_path, plugin_config: str):
    config = bootstrap_config(listener_port=free_port(), admin_port=free_port(),
                              upstream_port=free_port(), access_log=tmp_path / "access.log",
                              wasm=WASM, plugin_config=plugin_config)
    path = tmp_path / "envoy.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_empty_plugin_configuration_is_valid(tmp_path):
    result = validate(write_config(tmp_path, "{}"))
    assert result.returncode == 0, result.stderr[-2000:]


def test_unknown_field_is_rejected_and_named(tmp_path):
    result = validate(write_config(tmp_path, '{"bogus_field": 1}'))
    assert result.returncode != 0
    assert "bogus_field" in result.stdout + result.stderr


def test_bad_nested_value_is_rejected_with_its_path(tmp_path):
    result = validate(write_config(tmp_path, '{"metrics": {"max_label_values": 0}}'))
    assert result.returncode != 0
    assert "metrics.max_label_values" in result.stdout + result.stderr


def test_non_object_configuration_is_rejected(tmp_path):
    result = validate(write_config(tmp_path, "[1, 2]"))
    assert result.returncode != 0


def test_shipped_bootstrap_references_the_built_filter():
    text = BOOTSTRAP.read_text()
    assert "build/tokenmeter.wasm" in text
    assert "FAIL_RELOAD" in text


# Every configuration error is refused by the real Envoy at load, naming the field. One case
# per section (the unit tests in src/config.rs cover each reader in depth).
BAD_CONFIGS = [
    ('{"attribution": {"customer_header": 5}}', "attribution.customer_header"),
    ('{"attribution": {"default_value": "a;b"}}', "attribution.default_value"),
    ('{"attribution": {"customer_from": []}}', "attribution.customer_from"),
    ('{"attribution": {"customer_from": [{"cookie": "x"}]}}', "attribution.customer_from[0].cookie"),
    ('{"attribution": {"user_from": [{"jwt_claim": ["org", 1]}]}}', "attribution.user_from[0].jwt_claim[1]"),
    ('{"attribution": {"strip_headers": "yes"}}', "attribution.strip_headers"),
    ('{"attribution": {"api_key_salt": "short"}}', "attribution.api_key_salt"),
    ('{"max_decompressed_bytes": 0}', "max_decompressed_bytes"),
    ('{"strip_accept_encoding": 1}', "strip_accept_encoding"),
    ('{"metrics": {"max_label_values": 100001}}', "metrics.max_label_values"),
    ('{"routes": {}}', "routes"),
    ('{"azure_deployments": {"d": 3}}', "azure_deployments.d"),
    ('{"prices": []}', "prices"),
]


def test_every_bad_configuration_is_rejected_naming_its_field(tmp_path):
    failures = []
    for i, (plugin_config, field) in enumerate(BAD_CONFIGS):
        case_dir = tmp_path / str(i)
        case_dir.mkdir()
        result = validate(write_config(case_dir, plugin_config))
        output = result.stdout + result.stderr
        if result.returncode == 0 or field not in output:
            failures.append(f"{plugin_config}: rc={result.returncode}, field {field!r} "
                            f"{'named' if field in output else 'not named'}")
    assert not failures, "\n".join(failures)
