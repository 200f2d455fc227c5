"""`make run`: tokenmeter in a real Envoy, demo traffic from the official SDKs, spend report.

Starts the mock LLM upstream (127.0.0.1:18080) and Envoy with the shipped envoy/bootstrap.yaml
(listener 127.0.0.1:10000, admin 127.0.0.1:9901), sends a short burst of OpenAI and Anthropic
calls through Envoy with x-llm-feature / x-llm-customer / x-llm-user headers, then reads
Envoy's /stats/prometheus and prints spend by feature, by model and by customer.
Everything it started is stopped on exit; `--hold` keeps it running until Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import anthropic  # noqa: E402
import openai  # noqa: E402

from tests.e2e.harness import (  # noqa: E402
    ENVOY, http_get, parse_prometheus, start_mock, stop_process, wait_until)

LISTENER, ADMIN, UPSTREAM = 10000, 9901, 18080
RUN = REPO / ".run"

# (feature, customer, user, call, model, stream)
TRAFFIC = [
    ("search", "acme", "alice", "chat", "gpt-5-nano", False),
    ("search", "acme", "bob", "chat", "gpt-5-nano", True),
    ("search", "globex", "carol", "chat", "gpt-5-nano", False),
    ("support", "acme", "alice", "messages", "claude-haiku-4-5", False),
    ("support", "acme", "dave", "messages", "claude-haiku-4-5", True),
    ("support", "initech", "erin", "messages", "claude-haiku-4-5", True),
    ("summarize", "globex", "frank", "responses", "gpt-4o", False),
    ("summarize", "initech", "grace", "responses", "gpt-4.1-mini", True),
    ("rag", "acme", "alice", "embeddings", "text-embedding-3-small", False),
    ("rag", "globex", "heidi", "embeddings", "text-embedding-3-small", False),
    ("search", "initech", "ivan", "chat", "gpt-5-nano", True),
    ("support", "globex", "judy", "messages", "claude-haiku-4-5", False),
]


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def send(feature, customer, user, call, model, stream):
    headers = {"x-llm-feature": feature, "x-llm-customer": customer, "x-llm-user": user}
    base = f"http://127.0.0.1:{LISTENER}"
    if call == "messages":
        client = anthropic.Anthropic(base_url=base, api_key="demo", max_retries=0,
                                     default_headers=headers)
        result = client.messages.create(model=model, max_tokens=64, stream=stream,
                                        messages=[{"role": "user", "content": "Hi"}])
        if stream:
            list(result)
        return
    client = openai.OpenAI(base_url=base + "/v1", api_key="demo", max_retries=0,
                           default_headers=headers)
    if call == "chat":
        extra = {"stream_options": {"include_usage": True}} if stream else {}
        result = client.chat.completions.create(
            model=model, stream=stream, messages=[{"role": "user", "content": "Hi"}], **extra)
    elif call == "responses":
        result = client.responses.create(model=model, input="Summarize this.", stream=stream)
    else:
        result = client.embeddings.create(model=model, input="demo text")
    if stream:
        list(result)


def report(prometheus_text: str) -> None:
    samples = parse_prometheus(prometheus_text)
    by = {"feature": defaultdict(int), "gen_ai_request_model": defaultdict(int),
          "customer": defaultdict(int)}
    requests = 0
    tokens = defaultdict(int)
    for name, labels, value in samples:
        if name == "tokenmeter_cost_nanousd_total":
            for label, acc in by.items():
                acc[labels.get(label, "?")] += int(value)
        elif name == "tokenmeter_requests_total":
            requests += int(value)
        elif name == "tokenmeter_tokens_total":
            tokens[labels.get("gen_ai_token_type", "?")] += int(value)
    print(f"\nmetered requests: {requests}   tokens: {dict(tokens)}")
    titles = {"feature": "feature", "gen_ai_request_model": "model", "customer": "customer"}
    for label, acc in by.items():
        print(f"\nspend by {titles[label]}:")
        if not acc:
            print("  (no tokenmeter_cost_nanousd_total series yet)")
        for key, nanos in sorted(acc.items(), key=lambda kv: -kv[1]):
            print(f"  {key:<28} ${nanos // 1_000_000_000}.{nanos % 1_000_000_000:09d}")


def main() -> int:
    parser = argparse.ArgumentParser(description="tokenmeter demo")
    parser.add_argument("--hold", action="store_true", help="keep Envoy running until Ctrl-C")
    args = parser.parse_args()
    for port in (LISTENER, ADMIN, UPSTREAM):
        if not port_free(port):
            print(f"port 127.0.0.1:{port} is busy; stop whatever uses it and retry", file=sys.stderr)
            return 1
    RUN.mkdir(exist_ok=True)
    (RUN / "access.log").unlink(missing_ok=True)
    mock = start_mock(UPSTREAM)
    envoy = subprocess.Popen(
        [str(ENVOY), "-c", "envoy/bootstrap.yaml", "--concurrency", "2", "--base-id", "10",
         "--file-flush-interval-msec", "200", "--log-path", str(RUN / "envoy.log")],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready():
            if envoy.poll() is not None:
                raise SystemExit(f"envoy exited ({envoy.returncode}); see .run/envoy.log")
            return http_get(f"http://127.0.0.1:{ADMIN}/ready", 1).strip() == b"LIVE"
        wait_until(ready, 30, "envoy", 0.1)
        print(f"envoy on http://127.0.0.1:{LISTENER} (admin :{ADMIN}), mock upstream on :{UPSTREAM}")
        for row in TRAFFIC:
            send(*row)
            print("  sent", " ".join(str(x) for x in row))
        time.sleep(0.5)  # access log flush interval is 200 ms
        report(http_get(f"http://127.0.0.1:{ADMIN}/stats/prometheus").decode())
        log = RUN / "access.log"
        if log.exists() and log.read_text().strip():
            last = json.loads(log.read_text().splitlines()[-1])
            print("\nlast access-log line (.run/access.log):")
            print(json.dumps({k: v for k, v in last.items() if v not in (None, "")}, indent=2))
        if args.hold:
            print("\nrunning; Ctrl-C to stop")
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop_process(envoy)
        mock.stop()


if __name__ == "__main__":
    sys.exit(main())
