"""Turns a benchmark run into bench/results.md, the PASS/FAIL targets and a README summary.

Reads .run/bench/envoy.json (bench.py envoy), the criterion estimates under
.run/bench/criterion (bench/micro) and build/tokenmeter.wasm. Every figure is a median over
the run's repeats; every comparison (added CPU, ratio to the native filter, added TTFB) is
computed within one repeat and then the median taken, so machine noise that hits a whole
repeat cancels out.
"""
import json
import os
import platform
import statistics
import subprocess
import time

from bench import ROOT, WORK, WASM, ENVOY, LABELS, VARIANTS, WORKLOADS, PROMPT_TOKENS  # noqa

RESULTS = os.environ.get("BENCH_RESULTS", os.path.join(ROOT, "bench", "results.md"))
CRITERION = os.environ.get("CRITERION_HOME", os.path.join(WORK, "criterion"))
WASM_LIMIT = 400_000  # bytes: "< 400 KB", read strictly
MIB = 1024

TARGETS = {
    "cpu_pct": 15.0,        # tokenmeter's added CPU per 1 KB chat, % of plain Envoy's
    "cpu_vs_native": 1.5,   # ... and at most 1.5x what json_to_metadata adds
    "mem_10m_mib": 2.0,     # RSS after 10 MiB bodies within 2 MiB of before
    "mem_100m_mib": 2.0,    # ... and 100 MiB bodies leave it where 10 MiB did (same slack)
    "sse_mbps": 500.0,      # core SSE extraction throughput
    "sse_vs_serde": 5.0,    # ... and 5x the serde_json full parse
}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1, suffix=""):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}{suffix}"


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        ver = subprocess.run([ENVOY, "--version"], capture_output=True, text=True,
                             timeout=30).stdout.strip().split("version:")[-1].strip()
    except OSError:
        ver = "unknown"
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "envoy": ver}


def per_rep(runs, workload, variant, key):
    return {r["rep"]: r[key] for r in runs if r["workload"] == workload and r["variant"] == variant}


def envoy_figures(env):
    runs = env.get("runs", [])
    present = sorted({r["variant"] for r in runs})
    fig = {}
    for wl in WORKLOADS:
        for v in present:
            sel = [r for r in runs if r["workload"] == wl and r["variant"] == v]
            fig[(wl, v)] = {k: med([r[k] for r in sel])
                            for k in ("cpu_us", "cpu_us_ticks", "rps", "p50_ms", "p99_ms")}
            fig[(wl, v)]["requests"] = sum(r["requests"] for r in sel)
            fig[(wl, v)]["errors"] = sum(r["errors"] for r in sel)
        base = per_rep(runs, wl, "a", "cpu_us")
        native = per_rep(runs, wl, "b", "cpu_us")
        if base:
            vals = list(base.values())
            fig[(wl, "noise")] = (max(vals) - min(vals)) / med(vals) * 100 if med(vals) else None
        for v in present:
            if v == "a" or not base:
                continue
            mine = per_rep(runs, wl, v, "cpu_us")
            added = {k: mine[k] - base[k] for k in mine if k in base}
            fig[(wl, v)]["added_us"] = med(added.values())
            fig[(wl, v)]["added_pct"] = med([added[k] / base[k] * 100 for k in added if base[k]])
            if v in ("c", "d") and native:
                ratios = [added[k] / (native[k] - base[k]) for k in added
                          if k in native and native[k] - base[k] > 0]
                fig[(wl, v)]["vs_native"] = med(ratios)
    return present, fig


def ttfb_figures(env):
    samples = env.get("ttfb", [])
    reps = sorted({s["rep"] for s in samples})
    rep_med = {}
    for s in samples:
        if s["status"] == 200 and s["ttfb_ms"] is not None:
            rep_med.setdefault((s["variant"], s["rep"]), []).append(s["ttfb_ms"])
    rep_med = {k: med(v) for k, v in rep_med.items()}
    out = {}
    base = [rep_med.get(("a", r)) for r in reps]
    base = [b for b in base if b is not None]
    noise = (max(base) - min(base)) if base else None
    for v in VARIANTS:
        mine = [rep_med.get((v, r)) for r in reps]
        if not any(m is not None for m in mine):
            continue
        added = [rep_med[(v, r)] - rep_med[("a", r)] for r in reps
                 if (v, r) in rep_med and ("a", r) in rep_med]
        out[v] = {"ttfb_ms": med(mine), "added_ms": med(added) if v != "a" else None}
    return out, noise


def micro_figures():
    out = {}
    for group in ("sse_openai_60", "json_chat_1k", "json_embeddings_10m", "eventstream_bedrock_60"):
        for fn in ("tokenmeter", "serde_json"):
            base = os.path.join(CRITERION, group, fn, "new")
            try:
                with open(os.path.join(base, "estimates.json")) as f:
                    ns = json.load(f)["median"]["point_estimate"]
                with open(os.path.join(base, "benchmark.json")) as f:
                    tp = json.load(f).get("throughput") or {}
                nbytes = tp.get("Bytes") or tp.get("BytesDecimal")
            except (OSError, ValueError, KeyError):
                continue
            if nbytes and ns:
                out.setdefault(group, {})[fn] = nbytes / (ns * 1e-9) / 1e6
        if group in out:
            out[group]["bytes"] = nbytes
    try:
        with open(os.path.join(CRITERION, "tokenmeter-sanity.json")) as f:
            sanity = json.load(f)
    except (OSError, ValueError):
        sanity = {}
    return out, sanity


def verdict(ok, detail):
    return ("PASS" if ok else "FAIL"), detail


def main():
    try:
        with open(os.path.join(WORK, "envoy.json")) as f:
            env = json.load(f)
    except (OSError, ValueError):
        env = {}
    m = machine()
    present, fig = envoy_figures(env)
    ttfb, ttfb_noise = ttfb_figures(env)
    micro, micro_sanity = micro_figures()
    wasm_size = os.path.getsize(WASM) if os.path.exists(WASM) else None
    sanity = env.get("sanity", {})
    variants = env.get("variants", {})

    def extracted(v, wl):
        s = sanity.get(v, {}).get(wl)
        if s is None:
            return None
        return bool(s.get("extracted"))

    L = []
    L.append("# tokenmeter benchmark results\n")
    started = env.get("started")
    L.append(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started or time.time()))}"
             f" ({'BENCH_QUICK' if env.get('quick') else 'full'} run, {env.get('reps', '?')} "
             f"repeats; chat and stream: {env.get('seconds', '?')} s wrk windows, 8 connections; "
             f"10 MiB: {env.get('n_embed', '?')} sequential requests per repeat)")
    L.append(f"- machine: {m['nproc']} CPUs, {m['cpu']}, Linux {m['kernel']}; load average "
             f"{' '.join(env.get('loadavg_start', ['?']))} at start, "
             f"{' '.join(env.get('loadavg_end', ['?']))} at end")
    L.append(f"- Envoy: {m['envoy']} (`--concurrency 2` for each Envoy under test; one "
             "direct_response Envoy as the upstream; client wrk, 1 thread)")
    digest = ""
    if wasm_size:
        import hashlib
        with open(WASM, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()[:12]
    rel = os.path.relpath(WASM, ROOT) if WASM.startswith(ROOT) else WASM
    L.append(f"- tokenmeter.wasm: {fmt(wasm_size, 0) + ' bytes' if wasm_size else 'not built'}"
             f" (`{rel}`, sha256 {digest or 'n/a'}"
             f"{'; ' + os.environ['BENCH_WASM_NOTE'] if os.environ.get('BENCH_WASM_NOTE') else ''})")
    dinfo = variants.get("d", {})
    L.append(f"- (d) plugin config: `{dinfo.get('config', env.get('tm_budget_config', '{}'))}`"
             ", attribution headers x-llm-feature/customer/user sent" +
             (f" — NOTE: {dinfo['note']}" if dinfo.get("note") else ""))
    L.append(f"- sse_to_metadata in this Envoy: {'yes' if env.get('sse_to_metadata') else 'no'}")
    for v, info in variants.items():
        if info.get("error"):
            L.append(f"- {LABELS[v]}: not measured: {info['error']}")
    L.append("")
    L.append("The machine is shared (other builds run on the same 2 cores), so absolute figures "
             "are noisy; the comparisons are made within each repeat. Re-run on a quiet "
             "machine for publishable numbers.\n")

    cols = [v for v in VARIANTS if v in present]
    L.append("## Per request, through each Envoy (medians)\n")
    L.append("| workload | figure | " + " | ".join(LABELS[v] for v in cols) + " |")
    L.append("|---|---|" + "---|" * len(cols))
    names = {"chat": "chat JSON ~1 KB", "stream": "chat SSE, 60 events",
             "embed10m": "embeddings JSON 10 MiB",
             "passthrough": "non-LLM path (/healthz), same 1 KB exchange",
             "stream_paced": "chat SSE, 60 events paced 1 ms apart"}
    for wl in WORKLOADS:
        rows = [("CPU µs/request", "cpu_us", 1), ("RPS", "rps", 0), ("p50 ms", "p50_ms", 2),
                ("p99 ms", "p99_ms", 2)]
        for label, key, digits in rows:
            L.append(f"| {names[wl]} | {label} | " +
                     " | ".join(fmt(fig.get((wl, v), {}).get(key), digits) for v in cols) + " |")
        L.append(f"| {names[wl]} | added CPU vs (a) | " + " | ".join(
            "—" if v == "a" else
            f"{fmt(fig[(wl, v)].get('added_us'), 1)} µs ({fmt(fig[(wl, v)].get('added_pct'), 1)}%)"
            for v in cols) + " |")
        if wl != "passthrough":
            L.append(f"| {names[wl]} | usage extracted | " + " | ".join(
                "—" if v == "a" else {True: "yes", False: "**no**", None: "?"}[extracted(v, wl)]
                for v in cols) + " |")
        L.append(f"| {names[wl]} | requests (errors) | " + " | ".join(
            f"{fig[(wl, v)]['requests']} ({fig[(wl, v)]['errors']})" for v in cols) + " |")
    L.append("")
    L.append("CPU is the Envoy-under-test process's thread run time (schedstat, i.e. utime+stime "
             "at ns resolution) over a timed wrk window, divided by the requests completed. "
             "Spread of (a) across repeats: " + ", ".join(
                 f"{names[wl]} {fmt(fig.get((wl, 'noise')), 0)}%" for wl in WORKLOADS) +
             ". The \"chat SSE, 60 events\" rows use the direct_response upstream, which sends the "
             "60 events in one piece; the \"paced\" rows use the chunked origin (one write per "
             "event, 1 ms apart), so each event is its own body callback as with a real API; "
             "their RPS and latency are set by the pacing, not by Envoy.\n")

    L.append("## Streaming time to first event (chunked origin: 10 ms, then 60 events 1 ms apart)\n")
    L.append("| variant | TTFB ms (median) | added vs (a) ms |")
    L.append("|---|---|---|")
    for v, t in ttfb.items():
        L.append(f"| {LABELS[v]} | {fmt(t['ttfb_ms'], 2)} | "
                 f"{'—' if v == 'a' else fmt(t['added_ms'], 2)} |")
    L.append(f"\nNoise: spread (max−min) of (a)'s per-repeat medians = {fmt(ttfb_noise, 2)} ms.\n")

    mem = env.get("memory", {})
    L.append("## Memory: Envoy VmRSS around large responses\n")
    t10, t100 = env.get("mem_times", ["?", "?"])
    L.append(f"| variant | before MiB | after {t10}×10 MiB | after {t100}×100 MiB | Δ10 MiB | "
             "Δ100 vs 10 MiB |")
    L.append("|---|---|---|---|---|---|")
    for v, mm in mem.items():
        b, a10, a100 = (mm[k] / MIB for k in ("before_kib", "after_10m_kib", "after_100m_kib"))
        L.append(f"| {LABELS[v]} | {b:.1f} | {a10:.1f} | {a100:.1f} | {a10 - b:+.1f} | "
                 f"{a100 - a10:+.1f} |")
    L.append("\nEnvoy's /stats has no wasm VM memory figure (only `wasm.*` VM counts), so this "
             "is the whole Envoy process's RSS: it includes Envoy's own buffers and allocator "
             "caching, not just the V8 linear memory. (a) is the control: growth beyond (a)'s "
             "is what the filter keeps. (b) buffers whole bodies by design.\n")

    counts = []
    for v in ("c", "d"):
        stats = mem.get(v, {}).get("wasm_stats", "")
        tot = {}
        for line in stats.splitlines():
            name, _, val = line.rpartition(": ")
            for metric in ("tokenmeter_requests_total", "tokenmeter_usage_missing_total",
                           "tokenmeter_unrecognized_requests_total"):
                if name.endswith(metric) and val.strip().isdigit():
                    tot[metric] = tot.get(metric, 0) + int(val)
        if tot:
            counts.append(f"{LABELS[v]}: " + ", ".join(f"{k} {n:,}" for k, n in sorted(tot.items())))
    if counts:
        L.append("tokenmeter's own counters at the end of the run (all phases; requests cut at "
                 "the end of a wrk window count as usage missing): " + "; ".join(counts) + ".\n")

    L.append("## Micro-benchmarks: usage extraction (criterion, bench/micro)\n")
    L.append("| body | tokenmeter MB/s | serde_json full parse MB/s | ratio | usage extracted |")
    L.append("|---|---|---|---|---|")
    for group, title in (("sse_openai_60", "OpenAI SSE, 60 events"),
                         ("json_chat_1k", "chat JSON ~1 KB"),
                         ("json_embeddings_10m", "embeddings JSON 10 MiB"),
                         ("eventstream_bedrock_60", "Bedrock eventstream, 60 frames")):
        g = micro.get(group)
        if not g:
            note = "not run (see .run/bench/micro.log)"
            L.append(f"| {title} | {note} | | | |")
            continue
        tm, sj = g.get("tokenmeter"), g.get("serde_json")
        ok = micro_sanity.get(group, {}).get("ok")
        L.append(f"| {title} | {fmt(tm, 0)} | {fmt(sj, 0)} | "
                 f"{fmt(tm / sj if tm and sj else None, 1, '×')} | "
                 f"{'yes' if ok else '**no** (figure meaningless)'} |")
    L.append("")

    # ---- targets
    T = []
    chat_ok = {v: extracted(v, "chat") for v in ("c", "d")}

    def meaningless(v, wl="chat"):
        return extracted(v, wl) is False

    for v in ("c", "d"):
        f = fig.get(("chat", v))
        if not f:
            T.append((f"{v}: CPU added ≤ {TARGETS['cpu_pct']:.0f}% of plain Envoy (1 KB chat)",
                      "FAIL", "not measured"))
            continue
        pct, ratio = f.get("added_pct"), f.get("vs_native")
        note = " — but no usage extracted, so not meaningful" if meaningless(v) else ""
        T.append((f"{v}: CPU added ≤ {TARGETS['cpu_pct']:.0f}% of plain Envoy (1 KB chat)",
                  "PASS" if pct is not None and pct <= TARGETS["cpu_pct"] and not meaningless(v)
                  else "FAIL", f"{fmt(pct, 1)}%{note}"))
        T.append((f"{v}: CPU added ≤ {TARGETS['cpu_vs_native']}× json_to_metadata's (1 KB chat)",
                  "PASS" if ratio is not None and ratio <= TARGETS["cpu_vs_native"]
                  and not meaningless(v) else "FAIL",
                  f"{fmt(ratio, 2, '×')}{note}" if ratio is not None else
                  f"n/a (native added {fmt(fig.get(('chat', 'b'), {}).get('added_us'), 1)} µs, "
                  f"not above noise){note}"))
        t = ttfb.get(v)
        if t:
            ok = ttfb_noise is not None and t["added_ms"] is not None and \
                t["added_ms"] <= ttfb_noise and not meaningless(v, "stream")
            T.append((f"{v}: stream TTFB added within noise",
                      "PASS" if ok else "FAIL",
                      f"{fmt(t['added_ms'], 2)} ms vs noise {fmt(ttfb_noise, 2)} ms" +
                      (" — but no usage extracted" if meaningless(v, "stream") else "")))
        mm = mem.get(v)
        if mm:
            d10 = (mm["after_10m_kib"] - mm["before_kib"]) / MIB
            d100 = (mm["after_100m_kib"] - mm["after_10m_kib"]) / MIB
            bad = meaningless(v, "embed10m")
            T.append((f"{v}: memory after 10 MiB within {TARGETS['mem_10m_mib']:.0f} MiB of before",
                      "PASS" if d10 <= TARGETS["mem_10m_mib"] and not bad else "FAIL",
                      f"{d10:+.1f} MiB RSS" + (" — no usage extracted" if bad else "")))
            T.append((f"{v}: memory after 100 MiB where 10 MiB left it (±{TARGETS['mem_100m_mib']:.0f} MiB)",
                      "PASS" if abs(d100) <= TARGETS["mem_100m_mib"] and not bad else "FAIL",
                      f"{d100:+.1f} MiB RSS" + (" — no usage extracted" if bad else "")))
    sse = micro.get("sse_openai_60", {})
    sse_ok = micro_sanity.get("sse_openai_60", {}).get("ok", False)
    tm, sj = sse.get("tokenmeter"), sse.get("serde_json")
    if tm is None:
        stub = " — micro-benchmarks did not run (see .run/bench/micro.log)"
    elif not sse_ok:
        stub = " — the scanner extracted no usage, figure meaningless"
    else:
        stub = ""
    T.append((f"core SSE extraction ≥ {TARGETS['sse_mbps']:.0f} MB/s",
              "PASS" if tm and tm >= TARGETS["sse_mbps"] and sse_ok else "FAIL",
              f"{fmt(tm, 0)} MB/s{stub}"))
    T.append((f"core SSE extraction ≥ {TARGETS['sse_vs_serde']:.0f}× serde_json",
              "PASS" if tm and sj and tm / sj >= TARGETS["sse_vs_serde"] and sse_ok else "FAIL",
              f"{fmt(tm / sj if tm and sj else None, 1, '×')}{stub}"))
    # A module Envoy could not load (e.g. the core without the shell) is small and useless.
    loaded = "c" in present
    T.append(("tokenmeter.wasm < 400 KB",
              "PASS" if wasm_size and wasm_size < WASM_LIMIT and loaded else "FAIL",
              (f"{fmt(wasm_size, 0)} bytes" if wasm_size else "not built") +
              ("" if loaded else " — Envoy could not load it as a filter")))

    L.append("## Targets\n")
    L.append("| target | result | measured |")
    L.append("|---|---|---|")
    for name, res, detail in T:
        L.append(f"| {name} | **{res}** | {detail} |")
    L.append("")

    # ---- README summary
    c = fig.get(("chat", "c"), {})
    s = fig.get(("stream", "c"), {})
    e = fig.get(("embed10m", "c"), {})
    S = ["tokenmeter overhead (bench/run.sh, medians, "
         f"{m['nproc']}-CPU {m['cpu']}, Envoy {m['envoy'].split('/')[1] if '/' in m['envoy'] else m['envoy']}):",
         f"- 1 KB chat JSON: +{fmt(c.get('added_us'), 1)} µs CPU/request "
         f"({fmt(c.get('added_pct'), 1)}% of plain Envoy; "
         f"{fmt(c.get('vs_native'), 2, '×')} what json_to_metadata adds); on a non-LLM path "
         f"the filter costs +{fmt(fig.get(('passthrough', 'c'), {}).get('added_us'), 1)} µs",
         f"- 60-event SSE stream: +{fmt(s.get('added_us'), 1)} µs CPU/request in one piece, "
         f"+{fmt(fig.get(('stream_paced', 'c'), {}).get('added_us'), 1)} µs event by event; "
         "time to first "
         f"event +{fmt(ttfb.get('c', {}).get('added_ms'), 2)} ms (noise {fmt(ttfb_noise, 2)} ms)",
         f"- 10 MiB embeddings: +{fmt(e.get('added_us'), 0)} µs CPU/request (json_to_metadata: "
         f"+{fmt(fig.get(('embed10m', 'b'), {}).get('added_us'), 0)} µs)",
         f"- core SSE usage extraction: {fmt(tm, 0)} MB/s ({fmt(tm / sj if tm and sj else None, 1, '×')}"
         " a serde_json parse)",
         f"- module size: {fmt(wasm_size / 1024 if wasm_size else None, 0)} KiB"]
    L.append("## Summary (for the README)\n")
    L.append("```")
    L.extend(S)
    L.append("```")
    text = "\n".join(L) + "\n"
    with open(RESULTS, "w") as f:
        f.write(text)
    print(text)
    print("=== targets ===")
    for name, res, detail in T:
        print(f"{res:4}  {name}: {detail}")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
