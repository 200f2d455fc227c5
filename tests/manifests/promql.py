"""Small PromQL helpers for contract checks: which metrics and labels an expression names,
and a promtool-based syntax check for arbitrary expressions."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path

import yaml

_FUNCS_AND_KEYWORDS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "increase", "irate",
    "histogram_quantile", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "and", "or", "unless", "bool", "label_replace", "clamp_min", "clamp_max",
    "vector", "scalar", "abs", "time", "sort", "sort_desc", "delta", "deriv", "absent",
    "last_over_time", "max_over_time", "avg_over_time", "sum_over_time", "round", "le",
}


def _strip_strings(expr: str) -> str:
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)


def metric_names(expr: str) -> set[str]:
    """Identifiers that are used as metric selectors (not functions, keywords or labels)."""
    text = _strip_strings(expr)
    # Remove label matchers {...} and grouping clauses by (...) / without (...) / on (...).
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    names = set()
    for m in re.finditer(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = m.group(1), m.group(2)
        if call or word in _FUNCS_AND_KEYWORDS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        if re.fullmatch(r"(e|[0-9].*)", word):
            continue
        names.add(word)
    return names


def label_names(expr: str) -> set[str]:
    """Label names in matchers and in by/without/on clauses."""
    text = _strip_strings(expr)
    labels = set()
    for block in re.findall(r"\{([^}]*)\}", text):
        labels.update(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", block))
    for block in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        labels.update(x.strip() for x in block.split(",") if x.strip())
    return labels


def promtool_check_exprs(promtool: str, exprs: dict[str, str]) -> subprocess.CompletedProcess:
    """Parse-checks each expression by wrapping it as a recording rule and running
    `promtool check rules`: promtool parses every expr with the real PromQL parser."""
    rules = {"groups": [{"name": "exprs", "rules": [
        {"record": f"check:{re.sub(r'[^a-zA-Z0-9_]', '_', key)}", "expr": expr} for key, expr in exprs.items()
    ]}]}
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "exprs.yml"
        path.write_text(yaml.safe_dump(rules, sort_keys=False))
        return subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
