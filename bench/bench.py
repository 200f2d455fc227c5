"""Envoy-level benchmark of tokenmeter against plain Envoy and Envoy's native extraction filters.

Driven by bench/run.sh (which installs the tools and builds the module); stdlib only.

  bench.py envoy   start the upstream and the four Envoys under test, measure, write envoy.json
  bench.py report  read envoy.json, the criterion estimates and the .wasm, write results.md

Variants (one Envoy each, all running at once, requests interleaved so machine noise hits all):
  a  plain     no filter but the router: the floor
  b  native    envoy.filters.http.json_to_metadata (JSON) + sse_to_metadata (SSE, if built in),
               pulling usage.prompt_tokens / usage.completion_tokens into dynamic metadata
  c  tm        tokenmeter (build/tokenmeter.wasm) with config `{}`
  d  tm_full   tokenmeter with the budget config in $TM_BUDGET_CONFIG and attribution headers

Figures, each a median over BENCH_REPS repeats, each comparison a ratio within one repeat:
  CPU per request  sum of the Envoy-under-test threads' run time (/proc/<pid>/task/*/schedstat,
                   ns; the same quantity as utime+stime in /proc/<pid>/stat, which only has
                   10 ms ticks, so that one is recorded as a cross-check) over a timed wrk
                   window, divided by the requests the window completed
  RPS, p50, p99    wrk (one thread, fixed connections) with a Lua script printing its latency
  stream TTFB      time from request to the first SSE event through each Envoy, from a
                   chunked origin that waits 10 ms then sends 60 events 1 ms apart
  memory           VmRSS of each Envoy before/after 10 MiB and 100 MiB responses
"""
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.environ.get("BENCH_WORK", os.path.join(ROOT, ".run", "bench"))
BODIES = os.path.join(WORK, "bodies")
ENVOY = os.environ.get("ENVOY", os.path.join(ROOT, ".venv", "bin", "envoy"))
WASM = os.environ.get("TM_WASM", os.path.join(ROOT, "build", "tokenmeter.wasm"))
ROOT_ID = os.environ.get("TM_ROOT_ID", "tokenmeter")
# Variant d: one hard monthly USD budget that every (d) request matches (x-llm-customer: acme)
# and that never runs out, so each request reserves and settles through shared data. Syntax
# from docs/budgets.md. If the module rejects it (the plugin config may not wire the `budget`
# section yet), (d) falls back to `{}` and the report says so.
# TODO(budget): drop the fallback once the shell loads budgets from the plugin config.
DEFAULT_BUDGET_CONFIG = json.dumps({"budget": {"budgets": [
    {"id": "bench-acme", "match": {"customer": "acme"}, "limit_usd": "1000000",
     "window": "month"}]}}, separators=(",", ":"))
TM_BUDGET_CONFIG = os.environ.get("TM_BUDGET_CONFIG", DEFAULT_BUDGET_CONFIG)
QUICK = os.environ.get("BENCH_QUICK", "0") not in ("", "0")
PORT_BASE = int(os.environ.get("BENCH_PORT_BASE", "18700"))
BASE_ID = int(os.environ.get("BENCH_BASE_ID", "4700"))
PROMPT_TOKENS = 1234

REPS = int(os.environ.get("BENCH_REPS", "3" if QUICK else "5"))
# Seconds of load per measurement window. Windows are timed, not counted, so a slow or
# contended machine cannot stretch a run past its bound; CPU is divided by the requests each
# window actually completed.
SECONDS = int(os.environ.get("BENCH_SECONDS", "1" if QUICK else "3"))
CONNS = {"chat": 8, "passthrough": 8, "stream": 8, "stream_paced": 16}
# The 10 MiB workload is a fixed count of sequential requests instead of a wrk window: one
# json_to_metadata request takes about half a second here, so a timed window would mostly
# measure requests cut at its edges.
N_EMBED = int(os.environ.get("BENCH_N_EMBED", "3" if QUICK else "6"))
TTFB_SAMPLES = int(os.environ.get("BENCH_TTFB_SAMPLES", "8" if QUICK else "15"))
MEM_10M_TIMES, MEM_100M_TIMES = (2, 1) if QUICK else (5, 3)

WORKLOADS = {
    # name: (path, request body file, upstream body key)
    "chat": ("/v1/chat/completions", "req_chat.json", "chat"),
    # The same exchange on a path that is not an LLM API: what the filter costs just by being
    # in the chain (VM context, header callbacks, the unrecognised-traffic counter), which
    # splits tokenmeter's added CPU into a fixed part and the metering part.
    "passthrough": ("/healthz", "req_chat.json", "chat"),
    "stream": ("/v1/chat/completions", "req_stream.json", "stream"),
    # The same stream from the paced origin, one event per network write 1 ms apart, so each
    # event is its own body callback as with a real LLM API (the direct_response upstream
    # delivers the 60 events in one piece). Low RPS by design; CPU per request is the figure.
    "stream_paced": ("/v1/chat/completions", "req_stream.json", "stream"),
    "embed10m": ("/v1/embeddings", "req_embed.json", "embed10m"),
}
PACED = {"stream_paced"}
VARIANTS = ["a", "b", "c", "d"]
LABELS = {
    "a": "(a) Envoy, no filter",
    "b": "(b) native json/sse_to_metadata",
    "c": "(c) tokenmeter `{}`",
    "d": "(d) tokenmeter budget+attribution",
}
ATTRIBUTION = {"x-llm-feature": "bench", "x-llm-customer": "acme", "x-llm-user": "u-42"}
BIG_BUFFER = 256 << 20  # json_to_metadata buffers the whole body; 100 MiB must fit.
LOG_FORMAT = ("body=%REQ(X-BENCH-WORKLOAD)% status=%RESPONSE_CODE% bytes=%BYTES_SENT% "
              "j_in=%DYNAMIC_METADATA(bench:input_tokens)% "
              "j_out=%DYNAMIC_METADATA(bench:output_tokens)% "
              "tm_in=%FILTER_STATE(wasm.gen_ai.usage.input_tokens:PLAIN)% "
              "tm_out=%FILTER_STATE(wasm.gen_ai.usage.output_tokens:PLAIN)% "
              "tm_src=%FILTER_STATE(wasm.llm.usage_source:PLAIN)%\n")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------- Envoy configurations

def addr(port):
    return {"socket_address": {"address": "127.0.0.1", "port_value": port}}


def cluster(name, port, buffer=None):
    c = {"name": name, "type": "STATIC", "connect_timeout": "2s",
         "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [
             {"endpoint": {"address": addr(port)}}]}]}}
    if buffer:
        c["per_connection_buffer_limit_bytes"] = buffer
    return c


def hcm(stat_prefix, route_config, http_filters, access_log=None):
    cfg = {"@type": "type.googleapis.com/envoy.extensions.filters.network."
                    "http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": stat_prefix, "route_config": route_config,
           "http_filters": http_filters + [{"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    if access_log:
        cfg["access_log"] = access_log
    return {"name": "envoy.filters.network.http_connection_manager", "typed_config": cfg}


def bootstrap(listen, admin, filters, clusters, buffer=None):
    listener = {"name": "main", "address": addr(listen), "filter_chains": [{"filters": filters}]}
    if buffer:
        listener["per_connection_buffer_limit_bytes"] = buffer
    return {"admin": {"address": addr(admin)},
            "static_resources": {"listeners": [listener], "clusters": clusters}}


def upstream_config(port, admin):
    """A fast origin: direct_response bodies from files, chosen by the x-bench-body header."""
    files = {"chat": ("chat.json", "application/json"),
             "stream": ("stream.sse", "text/event-stream"),
             "embed10m": ("embed10m.json", "application/json"),
             "embed100m": ("embed100m.json", "application/json")}
    routes = []
    for key, (fname, ctype) in files.items():
        routes.append({
            "match": {"prefix": "/", "headers": [
                {"name": "x-bench-body", "string_match": {"exact": key}}]},
            "direct_response": {"status": 200,
                                "body": {"filename": os.path.join(BODIES, fname)}},
            "response_headers_to_add": [{"header": {"key": "content-type", "value": ctype},
                                         "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}]})
    routes.append({"match": {"prefix": "/"}, "direct_response": {"status": 404}})
    rc = {"max_direct_response_body_size_bytes": 110 << 20,
          "virtual_hosts": [{"name": "origin", "domains": ["*"], "routes": routes}]}
    return bootstrap(port, admin, [hcm("origin", rc, [])], [])


def usage_rule(field, key, wrap):
    rule = {"selectors": [{"key": "usage"}, {"key": field}],
            "on_present": {"metadata_namespace": "bench", "key": key, "type": "NUMBER"}}
    return {"rule": rule} if wrap else rule


def native_filters(with_sse):
    fields = [("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")]
    out = [{"name": "envoy.filters.http.json_to_metadata", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.json_to_metadata.v3."
                 "JsonToMetadata",
        "response_rules": {"rules": [usage_rule(f, k, False) for f, k in fields],
                           "allow_content_types": ["application/json"]}}}]
    if with_sse:
        out.append({"name": "envoy.filters.http.sse_to_metadata", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.sse_to_metadata.v3."
                     "SseToMetadata",
            "response_rules": {"content_parser": {
                "name": "envoy.content_parsers.json",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.content_parsers.json.v3."
                             "JsonContentParser",
                    "rules": [usage_rule(f, k, True) for f, k in fields]}}}}})
    return out


def wasm_filter(configuration):
    return [{"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "tokenmeter", "root_id": ROOT_ID,
                   "failure_policy": "FAIL_RELOAD",
                   "vm_config": {"vm_id": "tokenmeter", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": WASM}}},
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": configuration}}}}]


def dut_config(variant, port, admin, up_port, origin_port, with_sse, budget=None):
    filters = {"a": [], "b": native_filters(with_sse), "c": wasm_filter("{}"),
               "d": wasm_filter(budget or TM_BUDGET_CONFIG)}[variant]
    # Only json_to_metadata needs the big buffer; the others stream and keep Envoy's default,
    # as each would be deployed.
    buffer = BIG_BUFFER if variant == "b" else None
    rc = {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [
        {"match": {"prefix": "/", "headers": [
            {"name": "x-bench-origin", "string_match": {"exact": "chunked"}}]},
         "route": {"cluster": "chunked", "timeout": "120s"}},
        {"match": {"prefix": "/"}, "route": {"cluster": "upstream", "timeout": "120s"}}]}]}
    # Only requests marked x-bench-log are logged: the sanity check reads them, the timed
    # requests pay the same (tiny) filter evaluation in every variant.
    access_log = [{"name": "envoy.access_loggers.file",
                   "filter": {"header_filter": {"header": {"name": "x-bench-log",
                                                           "present_match": True}}},
                   "typed_config": {
                       "@type": "type.googleapis.com/envoy.extensions.access_loggers.file.v3."
                                "FileAccessLog",
                       "path": os.path.join(WORK, f"access-{variant}.log"),
                       "log_format": {"text_format_source": {"inline_string": LOG_FORMAT}}}}]
    return bootstrap(port, admin, [hcm(f"dut_{variant}", rc, filters, access_log)],
                     [cluster("upstream", up_port, buffer), cluster("chunked", origin_port, buffer)],
                     buffer)


# ---------------------------------------------------------------- processes

class Procs:
    def __init__(self):
        self.procs = []

    def start(self, name, argv, **kw):
        logf = open(os.path.join(WORK, f"{name}.out"), "wb")
        p = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT, **kw)
        self.procs.append((name, p))
        return p

    def stop_all(self):
        for _, p in self.procs:
            if p.poll() is None:
                try:
                    if p.stdin:
                        p.stdin.close()
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        for _, p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def port_free(port):
    with socket.socket() as s:
        # Envoy binds with SO_REUSEADDR, so TIME_WAIT leftovers of a previous run are fine.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def envoy_argv(cfg_path, base_id, name):
    return [ENVOY, "-c", cfg_path, "--concurrency", "2", "--base-id", str(base_id),
            "--file-flush-interval-msec", "200", "--log-level", "warn",
            "--log-path", os.path.join(WORK, f"{name}.log")]


def validate(cfg, name, base_id):
    path = os.path.join(WORK, f"{name}.json")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)
    r = subprocess.run([ENVOY, "--mode", "validate", "-c", path, "--base-id", str(base_id),
                        "--log-level", "error"], capture_output=True, text=True, timeout=120)
    return path, r.returncode == 0, (r.stdout + r.stderr)[-1500:]


def reject_reason(out):
    """The module's own words when it rejected its config, else Envoy's last line."""
    lines = [ln for ln in out.strip().splitlines() if ln.strip()]
    mine = [ln for ln in lines if "wasm log" in ln]
    pick = (mine or lines or ["?"])[-1]
    return pick.split("]", 5)[-1].strip()[-300:] if mine else pick[-300:]


def wait_ready(admin, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def cpu(pid):
    """(ns from per-thread schedstat, ns from utime+stime ticks) of a process so far."""
    ns = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                ns += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ns, ticks * 1e9 / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- clients

def http_request(port, path, body, headers):
    """One HTTP/1.1 request on a fresh connection; returns (status, body bytes, t_first_event).

    Reads the whole response to the end (Connection: close). t_first_event is the time from
    sending to the first `data:` byte seen, for the streaming TTFB figure.
    """
    s = socket.create_connection(("127.0.0.1", port), timeout=120)
    try:
        head = [f"POST {path} HTTP/1.1", "host: api.openai.com", "connection: close",
                "content-type: application/json", f"content-length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        t0 = time.perf_counter()
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        buf = bytearray()
        chunk = bytearray(1 << 20)
        view = memoryview(chunk)
        total, t_event, header_end, status = 0, None, -1, 0
        while True:
            n = s.recv_into(view)
            if n == 0:
                break
            total += n
            if header_end < 0 or t_event is None:
                buf += view[:n]
                if header_end < 0:
                    header_end = buf.find(b"\r\n\r\n")
                    if header_end >= 0:
                        m = re.match(rb"HTTP/1\.1 (\d+)", bytes(buf[:20]))
                        status = int(m.group(1)) if m else 0
                if header_end >= 0 and t_event is None and b"data:" in buf[header_end:]:
                    t_event = time.perf_counter() - t0
                if len(buf) > (1 << 16):
                    buf = buf[: header_end + 4] if header_end >= 0 else buf
        return status, total, t_event
    finally:
        s.close()


WRK_LUA = r'''
local f = assert(io.open(os.getenv("BENCH_REQ_BODY"), "rb"))
wrk.method = "POST"
wrk.path = os.getenv("BENCH_PATH")
wrk.body = f:read("*a")
f:close()
wrk.headers["Host"] = "api.openai.com"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["x-bench-body"] = os.getenv("BENCH_BODY")
if os.getenv("BENCH_ORIGIN") ~= "" then
  wrk.headers["x-bench-origin"] = os.getenv("BENCH_ORIGIN")
end
if os.getenv("BENCH_ATTRIBUTION") == "1" then
  wrk.headers["x-llm-feature"] = "bench"
  wrk.headers["x-llm-customer"] = "acme"
  wrk.headers["x-llm-user"] = "u-42"
end
function done(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"status_errors":%d,' ..
    '"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
'''


def run_seq(port, workload, variant, count):
    """`count` sequential requests on fresh connections, in the same shape as run_wrk's."""
    path, req, key = WORKLOADS[workload]
    with open(os.path.join(BODIES, req), "rb") as f:
        body = f.read()
    h = {"x-bench-body": key}
    if variant == "d":
        h.update(ATTRIBUTION)
    lat, errors = [], 0
    t0 = time.perf_counter()
    for _ in range(count):
        t = time.perf_counter()
        status, _, _ = http_request(port, path, body, h)
        lat.append(time.perf_counter() - t)
        errors += status != 200
    wall = time.perf_counter() - t0
    lat.sort()
    pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]  # noqa: E731
    return {"requests": count, "duration_us": wall * 1e6, "p50_us": pick(0.5) * 1e6,
            "p99_us": pick(0.99) * 1e6, "status_errors": errors, "socket_errors": 0}


def run_load(port, workload, variant, seconds):
    if workload == "embed10m":
        return run_seq(port, workload, variant, N_EMBED)
    return run_wrk(port, workload, variant, seconds)


def run_wrk(port, workload, variant, seconds):
    path, req, key = WORKLOADS[workload]
    env = dict(os.environ, BENCH_REQ_BODY=os.path.join(BODIES, req), BENCH_PATH=path,
               BENCH_BODY=key, BENCH_ORIGIN="chunked" if workload in PACED else "",
               BENCH_ATTRIBUTION="1" if variant == "d" else "0")
    script = os.path.join(WORK, "wrk.lua")
    argv = ["wrk", "-t1", f"-c{CONNS[workload]}", f"-d{seconds}s", "--timeout", "30s", "-s", script,
            f"http://127.0.0.1:{port}"]
    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=200)
    m = re.search(r"WRKJSON (\{.*\})", r.stdout)
    if not m:
        raise RuntimeError(f"wrk gave no result: {r.stdout[-500:]} {r.stderr[-500:]}")
    return json.loads(m.group(1))


# ---------------------------------------------------------------- the run

def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def sanity(duts):
    """One logged request per variant and workload; reads back what each filter extracted."""
    out = {}
    for v, d in duts.items():
        for wl, (path, req, key) in WORKLOADS.items():
            with open(os.path.join(BODIES, req), "rb") as f:
                body = f.read()
            h = {"x-bench-body": key, "x-bench-log": "1", "x-bench-workload": wl}
            if wl in PACED:
                h["x-bench-origin"] = "chunked"
            if v == "d":
                h.update(ATTRIBUTION)
            status, n, _ = http_request(d["port"], path, body, h)
            out.setdefault(v, {})[wl] = {"status": status, "bytes": n}
    time.sleep(1.0)  # access logs flush every 200 ms
    for v in duts:
        try:
            with open(os.path.join(WORK, f"access-{v}.log")) as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        for line in lines:
            kv = dict(p.split("=", 1) for p in line.split() if "=" in p)
            wl = kv.get("body")
            if wl in out.get(v, {}):
                got = kv.get("tm_in") if v in ("c", "d") else kv.get("j_in")
                out[v][wl]["extracted"] = got == str(PROMPT_TOKENS)
                out[v][wl]["log"] = line
    return out


def cmd_envoy():
    os.makedirs(WORK, exist_ok=True)
    with open(os.path.join(WORK, "wrk.lua"), "w") as f:
        f.write(WRK_LUA)
    for name in os.listdir(WORK):
        if name.startswith("access-"):
            os.remove(os.path.join(WORK, name))
    result = {"quick": QUICK, "reps": REPS, "seconds": SECONDS, "n_embed": N_EMBED,
              "mem_times": [MEM_10M_TIMES, MEM_100M_TIMES], "started": time.time(),
              "loadavg_start": open("/proc/loadavg").read().split()[:3],
              "tm_budget_config": TM_BUDGET_CONFIG, "variants": {}}
    ports = {"up": PORT_BASE, "up_admin": PORT_BASE + 1, "origin": PORT_BASE + 2}
    for i, v in enumerate(VARIANTS):
        ports[v] = PORT_BASE + 10 + 2 * i
        ports[v + "_admin"] = PORT_BASE + 11 + 2 * i
    busy = [p for p in ports.values() if not port_free(p)]
    if busy:
        raise SystemExit(f"ports in use: {busy} (set BENCH_PORT_BASE)")

    # Does this Envoy build have sse_to_metadata? Validate a config that uses it.
    with_sse = validate(dut_config("b", ports["b"], ports["b_admin"], ports["up"],
                                   ports["origin"], True), "probe-sse", BASE_ID + 9)[1]
    result["sse_to_metadata"] = with_sse
    log(f"sse_to_metadata in this Envoy: {'yes' if with_sse else 'NO (streams: n/a for b)'}")

    procs = Procs()
    try:
        up_cfg, ok, out = validate(upstream_config(ports["up"], ports["up_admin"]), "upstream",
                                   BASE_ID)
        if not ok:
            raise SystemExit(f"upstream config invalid:\n{out}")
        up = procs.start("upstream", envoy_argv(up_cfg, BASE_ID, "upstream"))
        procs.start("origin", [sys.executable, os.path.join(ROOT, "bench", "upstream",
                                                            "sse_origin.py"),
                               str(ports["origin"]), BODIES], stdin=subprocess.PIPE)
        if not wait_ready(ports["up_admin"], up):
            raise SystemExit("upstream Envoy did not become ready (see .run/bench/upstream.out)")

        duts = {}
        for i, v in enumerate(VARIANTS):
            info = {"label": LABELS[v]}
            result["variants"][v] = info
            if v in ("c", "d") and not os.path.exists(WASM):
                info["error"] = f"{WASM} not built"
                continue
            cfg, ok, out = validate(dut_config(v, ports[v], ports[v + "_admin"], ports["up"],
                                               ports["origin"], with_sse),
                                    f"dut-{v}", BASE_ID + 1 + i)
            if v == "d":
                info["config"] = TM_BUDGET_CONFIG
            if v == "d" and not ok and TM_BUDGET_CONFIG != "{}":
                reason = reject_reason(out)
                log(f"d: budget config rejected ({reason}); falling back to {{}}")
                cfg, ok, out = validate(dut_config(v, ports[v], ports[v + "_admin"],
                                                   ports["up"], ports["origin"], with_sse, "{}"),
                                        f"dut-{v}", BASE_ID + 1 + i)
                info["config"] = "{}"
                info["note"] = f"budget config rejected by the module, ran with {{}}: {reason}"
            if not ok:
                info["error"] = "config rejected: " + reject_reason(out)
                log(f"{v}: {info['error']}")
                continue
            p = procs.start(f"dut-{v}", envoy_argv(cfg, BASE_ID + 1 + i, f"dut-{v}"))
            if not wait_ready(ports[v + "_admin"], p):
                info["error"] = "Envoy did not start (see .run/bench/dut-%s.log)" % v
                log(f"{v}: {info['error']}")
                continue
            duts[v] = {"port": ports[v], "admin": ports[v + "_admin"], "pid": p.pid}
        log(f"Envoys under test: {', '.join(duts)}")

        result["sanity"] = sanity(duts)
        for v, per in result["sanity"].items():
            log(f"{v}: " + ", ".join(f"{wl}={s['status']}/{s['bytes']}B/"
                                      f"{'usage' if s.get('extracted') else 'no-usage'}"
                                      for wl, s in per.items()))

        # Warm-up: connections, V8 tier-up, allocator pools. The chat and stream exchanges run
        # every code path the other workloads use.
        for wl in ("chat", "stream", "embed10m"):
            for v, d in duts.items():
                if wl == "embed10m":
                    run_seq(d["port"], wl, v, 1)
                else:
                    run_wrk(d["port"], wl, v, 1)

        runs = []
        for rep in range(REPS):
            order = list(duts)
            order = order[rep % len(order):] + order[:rep % len(order)]
            for wl in WORKLOADS:
                for v in order:
                    d = duts[v]
                    c0 = cpu(d["pid"])
                    w = run_load(d["port"], wl, v, SECONDS)
                    c1 = cpu(d["pid"])
                    n = max(1, w["requests"])
                    runs.append({"rep": rep, "workload": wl, "variant": v,
                                 "cpu_us": (c1[0] - c0[0]) / n / 1e3,
                                 "cpu_us_ticks": (c1[1] - c0[1]) / n / 1e3,
                                 "rps": w["requests"] / (w["duration_us"] / 1e6),
                                 "p50_ms": w["p50_us"] / 1e3, "p99_ms": w["p99_us"] / 1e3,
                                 "requests": w["requests"],
                                 "errors": w["status_errors"] + w["socket_errors"]})
            log(f"rep {rep + 1}/{REPS} done: " + "; ".join(
                f"{r['workload']}/{r['variant']} {r['cpu_us']:.1f}us"
                for r in runs if r["rep"] == rep))
        result["runs"] = runs

        # Streaming TTFB through the chunked origin.
        with open(os.path.join(BODIES, "req_stream.json"), "rb") as f:
            sbody = f.read()
        ttfb = []
        for rep in range(REPS):
            for _ in range(TTFB_SAMPLES):
                for v, d in duts.items():
                    h = {"x-bench-body": "stream", "x-bench-origin": "chunked"}
                    if v == "d":
                        h.update(ATTRIBUTION)
                    status, n, t = http_request(d["port"], "/v1/chat/completions", sbody, h)
                    ttfb.append({"rep": rep, "variant": v, "status": status,
                                 "ttfb_ms": t * 1e3 if t is not None else None})
        result["ttfb"] = ttfb
        log("ttfb done")

        # Memory: RSS before and after big bodies, per variant.
        with open(os.path.join(BODIES, "req_embed.json"), "rb") as f:
            ebody = f.read()
        mem = {}
        for v, d in duts.items():
            h = dict(ATTRIBUTION) if v == "d" else {}
            m = {"before_kib": rss_kib(d["pid"])}
            for key, times, field in (("embed10m", MEM_10M_TIMES, "after_10m_kib"),
                                      ("embed100m", MEM_100M_TIMES, "after_100m_kib")):
                statuses = []
                for _ in range(times):
                    status, n, _ = http_request(d["port"], "/v1/embeddings", ebody,
                                                dict(h, **{"x-bench-body": key}))
                    statuses.append((status, n))
                time.sleep(0.5)
                m[field] = rss_kib(d["pid"])
                m[field.replace("_kib", "_responses")] = statuses
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{d['admin']}/stats?filter=wasm", timeout=5) as r:
                    m["wasm_stats"] = r.read().decode()[:20000]
            except OSError as e:
                m["wasm_stats"] = f"unavailable: {e}"
            mem[v] = m
            log(f"memory {v}: {m['before_kib']} -> {m['after_10m_kib']} -> "
                f"{m['after_100m_kib']} KiB")
        result["memory"] = mem
    finally:
        procs.stop_all()
    result["finished"] = time.time()
    result["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    with open(os.path.join(WORK, "envoy.json"), "w") as f:
        json.dump(result, f, indent=1)
    log(f"wrote {os.path.join(WORK, 'envoy.json')}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in ("envoy", "report"):
        raise SystemExit(__doc__)
    if sys.argv[1] == "envoy":
        cmd_envoy()
    else:
        from report import main as report_main  # noqa: E402  (bench/report.py)
        report_main()
