#!/usr/bin/env python3
"""A/B loop for tuning: CPU per request of several .wasm builds on the 1 KB chat exchange.

    python3 bench/ab.py NAME=path/to/a.wasm NAME2=path/to/b.wasm ...

Starts the direct_response upstream, plain Envoy (a) and one Envoy per module (each with the
`{}` configuration), then interleaves short wrk windows of the chat and non-LLM (passthrough)
workloads for BENCH_REPS repeats (default 5, BENCH_SECONDS default 2) and prints the median
CPU µs/request and the median added CPU over (a) per module. Reuses bench.py's configs and
clients; not part of `make bench`, only for comparing builds quickly on a noisy machine.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BENCH_PORT_BASE", "18800")
os.environ.setdefault("BENCH_BASE_ID", "4800")
os.environ.setdefault("BENCH_SECONDS", "2")
import bench  # noqa: E402


def main():
    mods = [a.split("=", 1) for a in sys.argv[1:]]
    if not mods:
        raise SystemExit(__doc__)
    reps = int(os.environ.get("BENCH_REPS", "5"))
    secs = bench.SECONDS
    os.makedirs(bench.WORK, exist_ok=True)
    with open(os.path.join(bench.WORK, "wrk.lua"), "w") as f:
        f.write(bench.WRK_LUA)
    base, bid = bench.PORT_BASE, bench.BASE_ID
    procs = bench.Procs()
    try:
        up_cfg, ok, out = bench.validate(bench.upstream_config(base, base + 1), "ab-upstream", bid)
        if not ok:
            raise SystemExit(out)
        up = procs.start("ab-upstream", bench.envoy_argv(up_cfg, bid, "ab-upstream"))
        if not bench.wait_ready(base + 1, up):
            raise SystemExit("upstream not ready")
        duts = {}
        for i, (name, wasm) in enumerate([("a", None)] + mods):
            port, admin = base + 10 + 2 * i, base + 11 + 2 * i
            if wasm:
                bench.WASM = os.path.abspath(wasm)
            cfg = bench.dut_config("a" if wasm is None else "c", port, admin, base, base + 2, False)
            path, ok, out = bench.validate(cfg, f"ab-{name}", bid + 1 + i)
            if not ok:
                raise SystemExit(f"{name}: {out}")
            p = procs.start(f"ab-{name}", bench.envoy_argv(path, bid + 1 + i, f"ab-{name}"))
            if not bench.wait_ready(admin, p):
                raise SystemExit(f"{name} not ready")
            duts[name] = (port, p.pid)
        for name, (port, _) in duts.items():
            bench.run_wrk(port, "chat", "c", 1)
        res = {}
        for rep in range(reps):
            order = list(duts)
            order = order[rep % len(order):] + order[:rep % len(order)]
            for wl in ("chat", "passthrough"):
                for name in order:
                    port, pid = duts[name]
                    c0 = bench.cpu(pid)
                    w = bench.run_wrk(port, wl, "c", secs)
                    c1 = bench.cpu(pid)
                    res.setdefault((wl, rep), {})[name] = (c1[0] - c0[0]) / max(1, w["requests"]) / 1e3
        for wl in ("chat", "passthrough"):
            print(f"== {wl}")
            for name in duts:
                cpu = bench.median([res[(wl, r)][name] for r in range(reps)])
                add = bench.median([res[(wl, r)][name] - res[(wl, r)]["a"] for r in range(reps)])
                print(f"  {name:12s} cpu {cpu:7.1f} us/req   added {add:7.1f} us")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
