"""The metric contract, read from docs/metrics.md so that the doc is the single source.

Rules, dashboards and stats configs are checked against what this returns; a metric or label
used anywhere but missing from the doc fails a test.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"
STANDARD = ("gen_ai_provider_name", "gen_ai_request_model", "feature", "customer")


@dataclass(frozen=True)
class Metric:
    name: str
    type: str  # counter | gauge | histogram
    labels: tuple[str, ...]

    def series_names(self) -> tuple[str, ...]:
        """Names as scraped from /stats/prometheus."""
        if self.type == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _labels(cell: str) -> tuple[str, ...]:
    out: list[str] = []
    if "standard" in cell:
        out.extend(STANDARD)
    out.extend(re.findall(r"`([a-z_]+)`", cell))
    return tuple(out)


def metrics() -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\| `([a-z_]+)` \| (counter|gauge|histogram) \| ([^|]*) \|", line)
        if m:
            out[m.group(1)] = Metric(m.group(1), m.group(2), _labels(m.group(3)))
    return out


def label_names() -> set[str]:
    """Label names from the doc's "Label names" table."""
    names = set()
    in_table = False
    for line in DOC.read_text().splitlines():
        if line.startswith("## Label names"):
            in_table = True
        elif line.startswith("## "):
            in_table = False
        elif in_table:
            m = re.match(r"^\| `([a-z_]+)` \|", line)
            if m:
                names.add(m.group(1))
    return names


def stat_name_templates() -> list[str]:
    """The `wasmcustom.` stat-name templates from the doc's code block."""
    return [l.strip() for l in DOC.read_text().splitlines() if l.strip().startswith("wasmcustom.") and "=.=<" in l]


def all_series_names() -> set[str]:
    return {s for m in metrics().values() for s in m.series_names()}
