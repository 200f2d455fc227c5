"""Validate Kubernetes custom resources the way `kubectl apply` (strict field validation) does.

Istio's CRDs carry OpenAPI v3 "structural" schemas. Plain JSON Schema validation with them is
too lenient in two ways, and this module closes both:

1. Kubernetes rejects (under strict field validation, kubectl's default) any field that a
   structural schema does not declare, unless the node says
   `x-kubernetes-preserve-unknown-fields: true`. JSON Schema allows unknown properties unless
   `additionalProperties: false` is given, and the CRDs never say that. So we add
   `additionalProperties: false` to every object node that declares `properties` and does
   not preserve unknown fields. Under `preserve-unknown-fields` nodes (WasmPlugin
   `pluginConfig`, EnvoyFilter `patch.value`) nothing is enforced, by Kubernetes or by us.
   Those payloads are checked separately (against Envoy itself, or by comparison).
2. `x-kubernetes-validations` are CEL rules, which jsonschema ignores. We implement the
   exact rules our manifests reach, keyed by rule text. A rule we have not implemented
   fails validation rather than passing silently, so a CRD update cannot quietly switch off
   a check.

`metadata`, `apiVersion` and `kind` are not in the CRD schema (the API server adds them);
we add a strict subset: apiVersion must be a served version of the CRD's group.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]


def crd_path() -> Path:
    """The Istio CRD bundle: $ISTIO_CRDS, else ../shared/data next to the repository."""
    env = os.environ.get("ISTIO_CRDS")
    if env:
        return Path(env)
    return REPO.parent / "shared" / "data" / "istio-crds.gen.yaml"


class UnimplementedRule(Exception):
    pass


def _url_scheme_rule(value: str) -> bool:
    # isURL(self) ? scheme in [...] : isURL("http://" + self) && scheme in [...]
    allowed = {"", "http", "https", "oci", "file"}
    parsed = urlparse(value if "://" in value else "http://" + value)
    if not parsed.netloc and parsed.scheme not in ("file",):
        return False
    return parsed.scheme in allowed


def _one_of(*fields):
    return lambda v: sum(1 for f in fields if isinstance(v, dict) and f in v) <= 1


# Rule text (whitespace-normalised) -> predicate over the node's value.
CEL_RULES = {
    'isURL(self) ? (url(self).getScheme() in ["", "http", "https", "oci", "file"]) : '
    '(isURL("http://" + self) && url("http://" + self).getScheme() in ["", "http", "https", "oci", "file"])':
        _url_scheme_rule,
    "(has(self.selector) ? 1 : 0) + (has(self.targetRef) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        _one_of("selector", "targetRef", "targetRefs"),
    "(has(self.workloadSelector) ? 1 : 0) + (has(self.targetRefs) ? 1 : 0) <= 1":
        _one_of("workloadSelector", "targetRefs"),
    '!self.contains("*")': lambda v: "*" not in v,
    'self.all(key, !key.contains("*"))': lambda v: all("*" not in k for k in v),
    "self.all(key, key.size() != 0)": lambda v: all(len(k) != 0 for k in v),
    'has(self.context) ? ((self.context == "WAYPOINT") ? has(self.waypoint) : !has(self.waypoint)) : !has(self.waypoint)':
        lambda v: (("waypoint" in v) == (v.get("context") == "WAYPOINT")),
    "self.size() == 0": lambda v: len(v) == 0,
    # ServiceEntry / networking rules reached by egress-gateway.yaml.
    'self != "*"': lambda v: v != "*",
    "0 < self && self <= 65535": lambda v: 0 < v <= 65535,
    "self.all(l1, self.exists_one(l2, l1.number == l2.number))":
        lambda v: all(sum(1 for b in v if b.get("number") == a.get("number")) == 1 for a in v),
    "(has(self.workloadSelector) ? 1 : 0) + (has(self.endpoints) ? 1 : 0) <= 1":
        _one_of("workloadSelector", "endpoints"),
    '((has(self.resolution) ? self.resolution : "NONE") == "NONE") ? !has(self.endpoints) : true':
        lambda v: v.get("resolution", "NONE") != "NONE" or "endpoints" not in v,
    '((has(self.resolution) ? self.resolution : "") == "DNS_ROUND_ROBIN") ? '
    '((has(self.endpoints) ? self.endpoints : []).size() <= 1) : true':
        lambda v: v.get("resolution", "") != "DNS_ROUND_ROBIN" or len(v.get("endpoints", [])) <= 1,
    '!((has(self.addresses) ? self.addresses : []).exists(k, k.contains("/")) && '
    '!((has(self.resolution) ? self.resolution : "NONE") in ["STATIC", "NONE"]))':
        lambda v: not (any("/" in a for a in v.get("addresses", []))
                       and v.get("resolution", "NONE") not in ("STATIC", "NONE")),
}


def _norm(rule: str) -> str:
    return re.sub(r"\s+", " ", rule.replace("\n", " ")).strip()


_RULES = {_norm(k): f for k, f in CEL_RULES.items()}


def _cel(validator, rules, instance, schema):
    for rule in rules:
        text = _norm(rule["rule"])
        pred = _RULES.get(text)
        if pred is None:
            yield jsonschema.ValidationError(f"CEL rule not implemented by the test validator: {text}")
            continue
        if not pred(instance):
            yield jsonschema.ValidationError(f"CEL rule failed: {rule.get('message', text)}")


_Validator = jsonschema.validators.extend(
    jsonschema.Draft7Validator, {"x-kubernetes-validations": _cel}
)


def close_objects(node):
    """Adds additionalProperties: false where Kubernetes would prune/reject unknown fields."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in node
        ):
            node["additionalProperties"] = False
        for v in node.values():
            close_objects(v)
    elif isinstance(node, list):
        for v in node:
            close_objects(v)
    return node


_METADATA = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


class Schemas:
    """kind -> {apiVersion -> closed schema} for every served version in the CRD bundle."""

    def __init__(self, path: Path | None = None):
        path = path or crd_path()
        self.by_kind: dict[str, dict[str, dict]] = {}
        with open(path) as f:
            for doc in yaml.safe_load_all(f):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                spec = doc["spec"]
                kind, group = spec["names"]["kind"], spec["group"]
                for version in spec["versions"]:
                    if not version.get("served", False):
                        continue
                    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                    close_objects(schema)
                    api_version = f"{group}/{version['name']}"
                    schema.setdefault("properties", {})
                    schema["properties"]["apiVersion"] = {"const": api_version}
                    schema["properties"]["kind"] = {"const": kind}
                    schema["properties"]["metadata"] = _METADATA
                    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
                    schema["additionalProperties"] = False
                    self.by_kind.setdefault(kind, {})[api_version] = schema

    def errors(self, doc: dict) -> list[str]:
        """All validation errors for one manifest; empty means valid."""
        kind, api_version = doc.get("kind"), doc.get("apiVersion")
        versions = self.by_kind.get(kind)
        if versions is None:
            return [f"unknown kind {kind!r}"]
        schema = versions.get(api_version)
        if schema is None:
            return [f"{kind}: apiVersion {api_version!r} not served (have {sorted(versions)})"]
        return [
            f"{'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in _Validator(schema).iter_errors(doc)
        ]
