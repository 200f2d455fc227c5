"""Mock LLM upstream: replays recorded real provider responses.

Used by `make run` and the end-to-end tests. It answers like the real APIs, from the bodies
recorded in ../shared/fixtures, so the filter is exercised on real bytes:

  POST /v1/chat/completions   JSON, or SSE when the request has "stream": true (the stream
                              carries a usage chunk when stream_options.include_usage is set)
  POST /v1/responses          OpenAI Responses API, JSON or SSE
  POST /v1/embeddings         OpenAI embeddings
  POST /v1/messages           Anthropic Messages, JSON or SSE
  POST .../models/{m}:generateContent          Gemini JSON (tests/fixtures/gemini/basic.json)
  POST .../models/{m}:streamGenerateContent    Gemini stream: SSE with ?alt=sse, else the
                              default streamed JSON array (application/json, chunked)
  POST /model/{id}/converse   Bedrock Converse JSON (tests/fixtures/bedrock/basic.json)
  POST /model/{id}/converse-stream  Bedrock ConverseStream, application/vnd.amazon.eventstream
                              (tests/fixtures/bedrock/basic.bin, chunked at odd offsets)
  POST /model/{id}/invoke     Bedrock InvokeModel, an Anthropic body (bedrock/invoke.json)
  POST /model/{id}/invoke-with-response-stream  InvokeModelWithResponseStream, eventstream
                              of base64 `chunk`s (bedrock/invoke_stream.bin)
  POST .../publishers/anthropic/models/{m}:rawPredict        Vertex AI Claude, JSON
  POST .../publishers/anthropic/models/{m}:streamRawPredict  Vertex AI Claude, SSE
                              (the Anthropic Messages recordings in tests/fixtures/anthropic)
  POST /v1/completions        OpenAI legacy completions (ai-gateway cassettes), JSON or SSE
  POST /openai/deployments/{d}/chat/completions  Azure OpenAI (azure/azure-chat-basic.json)
  POST /v2/chat               Cohere v2 chat, JSON or SSE (tests/fixtures/cohere)
  POST /api/chat, /api/generate  Ollama native, application/x-ndjson (tests/fixtures/ollama)
  anything else               200 text/plain, so that non-LLM traffic can be checked

Fixture names starting with `repo:` are read from this repository's tests/fixtures.

Test headers (never sent by real clients):
  x-mock-gzip: 1              gzip the body (Content-Encoding: gzip; a stream is compressed
                              incrementally with a sync flush per chunk)
  x-mock-fixture: <relpath>   serve this fixture (relative to the fixtures dir) instead; a
                              `.bin` is served as an eventstream and `.ndjson` as NDJSON,
                              other files as SSE when the request has "stream": true, else JSON
  x-mock-content-type: <ct>   serve with this content type (streamed if it is a stream type)
  x-mock-headers: <json>      a JSON object of extra response headers (e.g. Bedrock's
                              x-amzn-bedrock-input-token-count)
  x-mock-delay-ms: <n>        delay between streamed chunks (default 10)
  x-mock-chunks: <n>          number of pieces a stream is cut into (default 5); cuts fall at
                              arbitrary byte offsets, not at event boundaries, as on the wire
  x-tokenmeter-test-*: <v>    echoed as a response header on streams (test-build filter hooks)
  x-mock-openai-usage: derive chat streams behave exactly like OpenAI on include_usage: one
                              recording (made with include_usage) is served as recorded when
                              the request asks for usage, and without the usage chunk and the
                              `"usage":null` members when it does not (see without_usage)

GET /__mock/last-request returns the method, path, headers and JSON body of the last LLM request
(and its `stream_options.include_usage`), so a test can see what the filter sent upstream.

Run: python tests/mock_upstream/server.py --port 18080 [--fixtures DIR]
Standard library only (plus PyYAML for the cassette files).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_FIXTURES = REPO.parent / "shared" / "fixtures"
REPO_FIXTURES = REPO / "tests" / "fixtures"
EVENTSTREAM = "application/vnd.amazon.eventstream"
NDJSON = "application/x-ndjson"
STREAM_TYPES = ("text/event-stream", EVENTSTREAM, NDJSON, "application/json+stream")
# The OpenAI recording made with include_usage, served by `x-mock-openai-usage: derive`.
OPENAI_USAGE_STREAM = "agentgateway/completions/stream.json"


def _cassette_body(path: Path) -> bytes:
    import yaml  # only needed for go-vcr cassettes

    doc = yaml.safe_load(path.read_text())
    return doc["interactions"][0]["response"]["body"].encode()


def load_fixture(fixtures: Path, rel: str) -> bytes:
    path = REPO_FIXTURES / rel[5:] if rel.startswith("repo:") else fixtures / rel
    if path.suffix == ".yaml":
        return _cassette_body(path)
    return path.read_bytes()


def without_usage(stream: bytes) -> bytes:
    """What OpenAI sends when the request lacks include_usage, from a stream recorded with
    it: no `choices: []` usage chunk, and no `"usage":null` member in the other chunks."""
    out = []
    for event in stream.decode().split("\n\n"):
        data = event.strip().removeprefix("data: ")
        try:
            chunk = json.loads(data)
        except ValueError:
            chunk = None
        if isinstance(chunk, dict) and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict):
            continue
        out.append(event.replace(',"usage":null', ""))
    return "\n\n".join(out).encode()


def include_usage(body: dict) -> bool:
    return bool((body.get("stream_options") or {}).get("include_usage"))


def choose_google_or_bedrock(path: str, query: str) -> tuple[str, str] | None:
    sse = "text/event-stream"
    js = "application/json"
    if "/models/" in path and path.endswith(":generateContent"):
        return "repo:gemini/basic.json", js
    if "/models/" in path and path.endswith(":streamGenerateContent"):
        if "alt=sse" in query:
            return "repo:gemini/stream.sse", sse
        return "repo:gemini/stream.json", js + "+stream"
    if path.startswith("/model/") and path.endswith("/converse"):
        return "repo:bedrock/basic.json", js
    if path.startswith("/model/") and path.endswith("/converse-stream"):
        return "repo:bedrock/basic.bin", EVENTSTREAM
    if path.startswith("/model/") and path.endswith("/invoke"):
        return "repo:bedrock/invoke.json", js
    if path.startswith("/model/") and path.endswith("/invoke-with-response-stream"):
        return "repo:bedrock/invoke_stream.bin", EVENTSTREAM
    if "/publishers/anthropic/models/" in path and path.endswith(":rawPredict"):
        return "repo:anthropic/basic.json", js
    if "/publishers/anthropic/models/" in path and path.endswith(":streamRawPredict"):
        return "repo:anthropic/stream-basic.sse", sse
    return None


# (path, streaming, include_usage) -> (fixture, content type)
def choose(path: str, body: dict) -> tuple[str, str] | None:
    stream = bool(body.get("stream"))
    sse = "text/event-stream"
    js = "application/json"
    if path == "/v1/chat/completions":
        if stream:
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            if include_usage:
                return "agentgateway/completions/stream.json", sse
            return "ai-gateway-cassettes/chat-streaming.yaml", sse
        return "ai-gateway-cassettes/chat-basic.yaml", js
    if path == "/v1/responses":
        return ("agentgateway/responses/stream.json", sse) if stream else ("agentgateway/responses/basic.json", js)
    if path == "/v1/embeddings":
        return "agentgateway/openai/embeddings.json", js
    if path == "/v1/messages":
        return ("agentgateway/anthropic/stream_basic.json", sse) if stream else ("agentgateway/anthropic/basic.json", js)
    if path == "/v1/completions":
        if stream:
            return "ai-gateway-cassettes/completion-streaming-usage.yaml", sse
        return "ai-gateway-cassettes/completion-basic.yaml", js
    if path.startswith("/openai/deployments/") and path.endswith("/chat/completions"):
        return "repo:azure/azure-chat-basic.json", js
    if path == "/v2/chat":
        return ("repo:cohere/chat-stream.sse", sse) if stream else ("repo:cohere/chat.json", js)
    # Ollama streams unless the request says "stream": false.
    if path == "/api/chat":
        return "repo:ollama/chat.ndjson", NDJSON
    if path == "/api/generate":
        return "repo:ollama/generate.ndjson", NDJSON
    return None


def gzip_bytes(data: bytes) -> bytes:
    # mtime=0 keeps the compressed bytes deterministic, so tests can compare them exactly.
    return gzip.compress(data, mtime=0)


def split(data: bytes, pieces: int) -> list[bytes]:
    pieces = max(1, min(pieces, len(data) or 1))
    step = max(1, len(data) // pieces)
    # Odd offsets so that cuts land inside events and inside multi-byte characters.
    cuts = [min(len(data), i * step + 7) for i in range(1, pieces)]
    out, start = [], 0
    for cut in cuts:
        if cut > start:
            out.append(data[start:cut])
            start = cut
    out.append(data[start:])
    return [p for p in out if p]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "mock-llm/1"
    fixtures: Path = DEFAULT_FIXTURES
    last_request: dict = {}
    lock = threading.Lock()

    def log_message(self, fmt, *args):  # quiet; the access log is Envoy's job
        if os.environ.get("MOCK_VERBOSE"):
            sys.stderr.write("mock: " + fmt % args + "\n")

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        if length:
            return self.rfile.read(length)
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            data = b""
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        return b""

    def _send_plain(self, code: int, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/__mock/last-request":
            with self.lock:
                body = json.dumps(Handler.last_request).encode()
            return self._send_plain(200, body, "application/json")
        if self.path == "/__mock/health":
            return self._send_plain(200, b"ok\n")
        return self._send_plain(200, b"hello from the mock upstream\n")

    def do_POST(self):
        raw = self._read_body()
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path, _, query = self.path.partition("?")
        override = self.headers.get("x-mock-fixture")
        body = body if isinstance(body, dict) else {}
        chosen = choose_google_or_bedrock(path, query) or choose(path, body)
        derive = (self.headers.get("x-mock-openai-usage") == "derive"
                  and path == "/v1/chat/completions" and body.get("stream"))
        if derive:
            chosen = (OPENAI_USAGE_STREAM, "text/event-stream")
        if override:
            ctype = "text/event-stream" if (isinstance(body, dict) and body.get("stream")) else "application/json"
            if override.endswith(".bin"):
                ctype = EVENTSTREAM
            elif override.endswith(".ndjson"):
                ctype = NDJSON
            chosen = (override, ctype)
        if chosen is not None and self.headers.get("x-mock-content-type"):
            chosen = (chosen[0], self.headers["x-mock-content-type"])
        if chosen is None:
            return self._send_plain(200, b"hello from the mock upstream\n")
        with self.lock:
            Handler.last_request = {
                "method": "POST",
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body_bytes": len(raw),
                "include_usage": include_usage(body),
                # What the filter forwarded (caps written, usage requested), for the budget tests.
                "body": body,
            }
        fixture, ctype = chosen
        try:
            data = load_fixture(self.fixtures, fixture)
        except (OSError, KeyError) as e:
            return self._send_plain(500, f"mock: cannot load {fixture}: {e}\n".encode())
        if derive and not include_usage(body):
            data = without_usage(data)
        want_gzip = self.headers.get("x-mock-gzip") == "1"
        if ctype in STREAM_TYPES:
            # Gemini's default stream is a JSON array sent over time as application/json.
            self._stream(data, want_gzip, ctype.removesuffix("+stream"))
        else:
            payload = gzip_bytes(data) if want_gzip else data
            self.send_response(200)
            self.send_header("content-type", ctype)
            if want_gzip:
                self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(payload)))
            self._extra_headers()
            self.end_headers()
            self.wfile.write(payload)

    def _stream(self, data: bytes, want_gzip: bool, ctype: str = "text/event-stream") -> None:
        delay = int(self.headers.get("x-mock-delay-ms") or 10) / 1000.0
        pieces = split(data, int(self.headers.get("x-mock-chunks") or 5))
        self.send_response(200)
        self.send_header("content-type", ctype)
        self._echo_test_headers()
        self._extra_headers()
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        if want_gzip:
            self.send_header("content-encoding", "gzip")
        self.end_headers()
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31) if want_gzip else None
        try:
            for piece in pieces:
                out = piece
                if compressor is not None:
                    out = compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
                self._chunk(out)
                time.sleep(delay)
            if compressor is not None:
                self._chunk(compressor.flush(zlib.Z_FINISH))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away mid-stream; that is a case the tests exercise

    def _echo_test_headers(self) -> None:
        # `x-tokenmeter-test-*` request headers come back as response headers, for test-build
        # hooks that act in the filter's response phase.
        for name, value in self.headers.items():
            if name.lower().startswith("x-tokenmeter-test-"):
                self.send_header(name.lower(), value)

    def _extra_headers(self) -> None:
        # `x-mock-headers: {"name": "value"}`: headers the real API sends beside the body.
        try:
            extra = json.loads(self.headers.get("x-mock-headers") or "{}")
        except ValueError:
            extra = {}
        for name, value in (extra.items() if isinstance(extra, dict) else ()):
            self.send_header(str(name), str(value))

    def _chunk(self, data: bytes) -> None:
        if not data:
            return
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def stream_bytes(fixtures: Path, rel: str, want_gzip: bool, pieces: int = 5) -> bytes:
    """The exact bytes the mock sends for a streamed fixture (for byte-identity tests)."""
    data = load_fixture(fixtures, rel)
    if not want_gzip:
        return data
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = b""
    for piece in split(data, pieces):
        out += compressor.compress(piece) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return out + compressor.flush(zlib.Z_FINISH)


def serve(port: int, fixtures: Path, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    Handler.fixtures = fixtures
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    args = parser.parse_args()
    if not args.fixtures.is_dir():
        sys.exit(f"mock: fixtures directory not found: {args.fixtures}")
    server = serve(args.port, args.fixtures, args.host)
    print(f"mock upstream listening on http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
