"""The PromQL of every panel in envoy/grafana/tokenmeter-dashboard.json, runnable as is.

Grafana fills in `$__rate_interval`, `$__range`, the dashboard's template variables, and so on
before it sends a query. `queries()` does the same substitution, so a test (here, or an e2e
test against a real Prometheus) can run each expression:

    from dashboard_queries import queries
    for q in queries(rate_interval="1m", range_="15m"):
        prometheus.query(q.expr)   # instant if q.instant, else range

Template variables default to their "All" value (`.*`); pass `variables={"feature": "search"}`
to pin one. Values are regex-escaped (Grafana does the same for multi-value variables used in
`=~` matchers).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[2] / "envoy" / "grafana" / "tokenmeter-dashboard.json"


@dataclass(frozen=True)
class Query:
    panel: str  # panel title
    ref_id: str  # target refId (A, B, ...)
    expr: str  # PromQL with every Grafana variable substituted
    instant: bool  # True for instant queries (bar gauges/stats over $__range)
    unit: str | None  # the panel's display unit


def load(path: Path = DASHBOARD) -> dict:
    with open(path) as f:
        return json.load(f)


def panels(dashboard: dict) -> list[dict]:
    """All non-row panels, including panels nested in collapsed rows."""
    out = []
    for p in dashboard.get("panels", []):
        if p.get("type") == "row":
            out.extend(p.get("panels", []))
        else:
            out.append(p)
    return out


def _variable_names(dashboard: dict) -> list[str]:
    return [v["name"] for v in dashboard.get("templating", {}).get("list", [])]


def substitute(expr: str, *, rate_interval: str, interval: str, range_: str, variables: dict[str, str]) -> str:
    builtins = {
        "__rate_interval": rate_interval,
        "__interval": interval,
        "__range": range_,
    }
    values = {**builtins, **variables}

    def repl(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name not in values:
            raise KeyError(f"unknown Grafana variable ${name} in {expr!r}")
        return values[name]

    # ${name} and $name; longest names first so $__rate_interval is not read as $__rate.
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", repl, expr)


def queries(
    path: Path = DASHBOARD,
    *,
    rate_interval: str = "5m",
    interval: str = "1m",
    range_: str = "1h",
    variables: dict[str, str] | None = None,
) -> list[Query]:
    dashboard = load(path)
    values = {name: ".*" for name in _variable_names(dashboard)}
    for k, v in (variables or {}).items():
        values[k] = re.escape(v)
    out = []
    for panel in panels(dashboard):
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if not expr:
                continue
            out.append(Query(
                panel=panel.get("title", ""),
                ref_id=target.get("refId", ""),
                expr=substitute(expr, rate_interval=rate_interval, interval=interval, range_=range_, variables=values),
                instant=bool(target.get("instant")),
                unit=unit,
            ))
    return out


def exprs(**kwargs) -> list[str]:
    """Just the substituted expressions."""
    return [q.expr for q in queries(**kwargs)]


if __name__ == "__main__":
    for q in queries():
        print(f"{q.panel} [{q.ref_id}] {'instant' if q.instant else 'range'}: {q.expr}")
