#!/usr/bin/env python3
"""A/B loop for tuning: CPU per request (and stream TTFB) of several .wasm builds.

    python3 bench/ab.py NAME=path/to/a.wasm NAME2=path/to/b.wasm ...

Starts the direct_response upstream, the chunked SSE origin, plain Envoy (a) and one Envoy per
module, then interleaves short wrk windows of each workload for BENCH_REPS repeats (default 5,
BENCH_SECONDS default 2) and prints the median CPU µs/request, the median added CPU over (a)
and its spread (min..max of the per-repeat differences) per module. Reuses bench.py's configs
and clients; not part of `make bench`, only for comparing builds quickly on a noisy machine.

Knobs: AB_VARIANT (c: `{}`, the default; d: bench.py's budget config and attribution headers),
AB_WORKLOADS (comma list of bench.py workloads, default chat,passthrough; stream_paced is one
body callback per event), AB_TTFB (samples per repeat of the streaming time to first event
through the chunked origin, on the chat path and on the unmetered /healthz, default 0 = off).
"""
import os
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("BENCH_PORT_BASE", "18800")
os.environ.setdefault("BENCH_BASE_ID", "4800")
os.environ.setdefault("BENCH_SECONDS", "2")
import bench  # noqa: E402


def spread(xs):
    return f"{min(xs):6.1f}..{max(xs):6.1f}"


def main():
    mods = [a.split("=", 1) for a in sys.argv[1:]]
    if not mods:
        raise SystemExit(__doc__)
    reps = int(os.environ.get("BENCH_REPS", "5"))
    variant = os.environ.get("AB_VARIANT", "c")
    workloads = [w for w in os.environ.get("AB_WORKLOADS", "chat,passthrough").split(",") if w]
    ttfb_n = int(os.environ.get("AB_TTFB", "0"))
    # The stream through the metered path, and the same stream on a path the filter does not
    # meter: the floor any wasm filter adds to the first event.
    ttfb_paths = ["/v1/chat/completions", "/healthz"]
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
        procs.start("ab-origin", [sys.executable, os.path.join(bench.ROOT, "bench", "upstream",
                                                               "sse_origin.py"),
                                  str(base + 2), bench.BODIES], stdin=subprocess.PIPE)
        if not bench.wait_ready(base + 1, up):
            raise SystemExit("upstream not ready")
        duts = {}
        for i, (name, wasm) in enumerate([("a", None)] + mods):
            port, admin = base + 10 + 2 * i, base + 11 + 2 * i
            if wasm:
                bench.WASM = os.path.abspath(wasm)
            cfg = bench.dut_config("a" if wasm is None else variant, port, admin, base, base + 2,
                                   False)
            path, ok, out = bench.validate(cfg, f"ab-{name}", bid + 1 + i)
            if not ok:
                raise SystemExit(f"{name}: {out}")
            p = procs.start(f"ab-{name}", bench.envoy_argv(path, bid + 1 + i, f"ab-{name}"))
            if not bench.wait_ready(admin, p):
                raise SystemExit(f"{name} not ready")
            duts[name] = (port, p.pid, admin)
        for name, (port, _, _) in duts.items():
            for wl in workloads:
                bench.run_wrk(port, wl, variant, 1)
        with open(os.path.join(bench.BODIES, "req_stream.json"), "rb") as f:
            sbody = f.read()
        res, ttfb = {}, {}
        for rep in range(reps):
            order = list(duts)
            order = order[rep % len(order):] + order[:rep % len(order)]
            for wl in workloads:
                for name in order:
                    port, pid, _ = duts[name]
                    c0 = bench.cpu(pid)
                    w = bench.run_wrk(port, wl, variant, secs)
                    c1 = bench.cpu(pid)
                    res.setdefault((wl, rep), {})[name] = (c1[0] - c0[0]) / max(1, w["requests"]) / 1e3
            for _ in range(ttfb_n):
                for path in ttfb_paths:
                    for name in order:
                        h = {"x-bench-body": "stream", "x-bench-origin": "chunked"}
                        if variant == "d" and name != "a":
                            h.update(bench.ATTRIBUTION)
                        _, _, t = bench.http_request(duts[name][0], path, sbody, h)
                        if t is not None:
                            ttfb.setdefault((path, rep), {}).setdefault(name, []).append(t * 1e3)
        for wl in workloads:
            print(f"== {wl} (variant {variant}, {reps} reps x {secs}s)")
            for name in duts:
                cpu = bench.median([res[(wl, r)][name] for r in range(reps)])
                adds = [res[(wl, r)][name] - res[(wl, r)]["a"] for r in range(reps)]
                print(f"  {name:12s} cpu {cpu:7.1f} us/req   added {bench.median(adds):7.1f} us"
                      f"   (per-rep {spread(adds)})")
        for path in ttfb_paths if ttfb_n else []:
            print(f"== ttfb ms, {path} (median of {ttfb_n} per rep; added = per-rep median minus a's)")
            for name in duts:
                per = [ttfb[(path, r)] for r in range(reps)]
                meds = [bench.median(p[name]) for p in per]
                adds = [bench.median(p[name]) - bench.median(p["a"]) for p in per]
                print(f"  {name:12s} ttfb {bench.median(meds):6.2f}   added {bench.median(adds):5.2f}"
                      f"   (per-rep {min(adds):5.2f}..{max(adds):5.2f})")
        # Upstream connections per request to the chunked origin: 1.0 means every request
        # opened a new one (e.g. the origin misread a chunked request body), ~0 means reuse.
        for name, (_, _, admin) in duts.items():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/stats?filter=^cluster\\.chunked\\."
                                            "upstream_(cx|rq)_total$", timeout=5) as r:
                    stats = dict(ln.split(": ") for ln in r.read().decode().split("\n") if ": " in ln)
                cx, rq = (int(stats.get(f"cluster.chunked.upstream_{k}_total", 0)) for k in ("cx", "rq"))
                print(f"  {name:12s} chunked origin: {cx} connections for {rq} requests")
            except (OSError, ValueError):
                pass
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
