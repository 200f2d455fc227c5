"""A hostile LLM upstream on raw sockets, for tests/e2e/test_hostile.py.

Unlike tests/mock_upstream (a well-behaved replay of real provider responses), this server
misbehaves on purpose at the byte and socket level, which http.server cannot: it truncates
bodies, resets connections mid-stream, lies about content types, sends invalid UTF-8, JSON
nested 100,000 deep, a 100 MB body and a gzip bomb.

The request header `x-hostile: <case>` picks the behaviour. Every body is a pure function of
the case (`body_for`), so a test can compare what reached the client byte for byte with what
was sent. `served()` counts requests per case, so tests can also check the upstream was hit.

Run standalone: python tests/e2e/hostile_upstream.py --port 18090
"""

from __future__ import annotations

import argparse
import gzip
import json
import socket
import socketserver
import struct
import threading
import time
import zlib
from functools import lru_cache

OK_USAGE = {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}

# Big enough to cross many 16 KiB buffers and the 16 MiB decode bound, small enough to be quick.
BIG_BYTES = 100 * 1024 * 1024
BOMB_DECOMPRESSED = 256 * 1024 * 1024


def chat_json(content: str = "ok", usage: dict | None = None, model: str = "gpt-4o-mini") -> bytes:
    return json.dumps({
        "id": "chatcmpl-hostile", "object": "chat.completion", "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                     "finish_reason": "stop"}],
        "usage": usage or OK_USAGE,
    }, separators=(",", ":")).encode()


def sse_events(n: int) -> bytes:
    out = b""
    for i in range(n):
        chunk = {"id": "chatcmpl-sse", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
                 "choices": [{"index": 0, "delta": {"content": f"tok{i} "}}]}
        out += b"data: " + json.dumps(chunk).encode() + b"\n\n"
    return out


SSE_USAGE_TAIL = (b'data: {"id":"chatcmpl-sse","object":"chat.completion.chunk","model":"gpt-4o-mini",'
                  b'"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}'
                  b"\n\ndata: [DONE]\n\n")

ERRORS = {
    "openai-401": (401, {"error": {"message": "Incorrect API key provided: sk-****", "type":
                                   "invalid_request_error", "param": None, "code": "invalid_api_key"}}),
    "openai-429": (429, {"error": {"message": "Rate limit reached", "type": "requests",
                                   "param": None, "code": "rate_limit_exceeded"}}),
    "openai-500": (500, {"error": {"message": "The server had an error", "type": "server_error",
                                   "param": None, "code": None}}),
    "anthropic-400": (400, {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": "max_tokens: Field required"}}),
    "anthropic-529": (529, {"type": "error", "error": {"type": "overloaded_error",
                                                        "message": "Overloaded"}}),
}


def big_prefix() -> bytes:
    return b'{"id":"chatcmpl-big","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"'


def big_suffix() -> bytes:
    return b'"},"finish_reason":"stop"}],"usage":' + json.dumps(OK_USAGE).encode() + b"}"


BIG_PIECE = b"abcdefghij" * 104857 + b"abcdef"  # 1 MiB of content characters


def big_pieces():
    """The 100 MB body in 1 MiB pieces: never held in memory whole."""
    yield big_prefix()
    filler = BIG_BYTES - len(big_prefix()) - len(big_suffix())
    while filler > 0:
        piece = BIG_PIECE[:filler]
        filler -= len(piece)
        yield piece
    yield big_suffix()


@lru_cache(maxsize=None)
def gzip_bomb() -> bytes:
    """A chat completion whose content is 256 MiB of '0': ~250 KiB compressed. The usage sits
    after the padding, beyond any sane decompression bound."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(b'{"id":"chatcmpl-bomb","object":"chat.completion","model":"gpt-4o-mini",'
                      b'"choices":[{"index":0,"message":{"role":"assistant","content":"')]
    block = b"0" * (1 << 20)
    for _ in range(BOMB_DECOMPRESSED >> 20):
        out.append(c.compress(block))
    out.append(c.compress(b'"}}],"usage":' + json.dumps(OK_USAGE).encode() + b"}"))
    out.append(c.flush())
    return b"".join(out)


def deep_json(depth: int = 100_000) -> bytes:
    return b'{"usage":' + b"[" * depth + b"]" * depth + b"}"


# case -> (status, content-type, body) for the cases with a fixed body.
def body_for(case: str) -> tuple[int, str, bytes]:
    if case == "ok":
        return 200, "application/json", chat_json()
    if case in ERRORS:
        status, body = ERRORS[case]
        return status, "application/json", json.dumps(body).encode()
    if case == "not-json":
        return 200, "application/json", b"<html><body>502 Bad Gateway (upstream proxy)</body></html>\n"
    if case == "bad-utf8":
        return 200, "application/json", (
            b'{"id":"chatcmpl-\xff\xfe","object":"chat.completion","model":"gpt-4o-mini","choices":'
            b'[{"index":0,"message":{"role":"assistant","content":"\xc3\x28\xa0\xa1\xed\xa0\x80"}}],'
            b'"usage":{"prompt_tokens":11,"completion_tokens":22,"total_tokens":33}}')
    if case == "deep":
        return 200, "application/json", deep_json()
    if case == "deep-sse":
        return 200, "text/event-stream", b"data: " + deep_json() + b"\n\n" + SSE_USAGE_TAIL
    if case == "gzip-bomb":
        return 200, "application/json", gzip_bomb()
    if case == "truncated":
        return 200, "application/json", chat_json()
    if case in ("reset-sse", "slow-sse", "sse"):
        return 200, "text/event-stream", sse_events(30) + SSE_USAGE_TAIL
    raise KeyError(case)


# How many bytes of the body `truncated` and `reset-sse` send before breaking the connection.
TRUNCATE_AT = 60
RESET_AFTER_EVENTS = 3


def reset_sse_sent() -> bytes:
    """The part of the `reset-sse` body that leaves the upstream before the reset."""
    return sse_events(RESET_AFTER_EVENTS)


_served: dict[str, int] = {}
_served_lock = threading.Lock()


def _count(case: str) -> None:
    with _served_lock:
        _served[case] = _served.get(case, 0) + 1


class Handler(socketserver.BaseRequestHandler):
    def _read_request(self) -> dict[str, str] | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.request.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        headers[":request-line"] = lines[0]
        length = int(headers.get("content-length") or 0)
        while len(rest) < length:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            rest += chunk
        return headers

    def _head(self, status: int, ctype: str, extra: str = "") -> bytes:
        return (f"HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\n{extra}"
                "connection: close\r\n\r\n").encode()

    def handle(self):
        sock: socket.socket = self.request
        headers = self._read_request()
        if headers is None:
            return
        line = headers[":request-line"]
        if " /__hostile/served" in line:
            body = json.dumps(_served).encode()
            sock.sendall(self._head(200, "application/json", f"content-length: {len(body)}\r\n") + body)
            return
        case = headers.get("x-hostile", "ok")
        _count(case)
        if case == "big":
            sock.sendall(self._head(200, "application/json", f"content-length: {BIG_BYTES}\r\n"))
            for piece in big_pieces():
                sock.sendall(piece)
            return
        status, ctype, body = body_for(case)
        if case == "truncated":
            sock.sendall(self._head(status, ctype, f"content-length: {len(body)}\r\n") + body[:TRUNCATE_AT])
            time.sleep(0.2)
            return  # FIN with the body short of its content-length
        if case in ("reset-sse", "slow-sse", "sse"):
            sock.sendall(self._head(status, ctype, "transfer-encoding: chunked\r\n"))
            events = body.split(b"\n\n")
            for i, event in enumerate(e for e in events if e):
                if case == "reset-sse" and i == RESET_AFTER_EVENTS:
                    time.sleep(0.3)  # let Envoy forward what was sent before the reset
                    # SO_LINGER 0: close() sends a TCP RST instead of a FIN.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
                    return
                data = event + b"\n\n"
                try:
                    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                except OSError:
                    return  # the client went away: exactly what slow-sse tests
                time.sleep(0.1 if case == "slow-sse" else 0.01)
            sock.sendall(b"0\r\n\r\n")
            return
        extra = f"content-length: {len(body)}\r\n"
        if case == "gzip-bomb":
            extra += "content-encoding: gzip\r\n"
        sock.sendall(self._head(status, ctype, extra) + body)


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def serve(port: int = 0) -> Server:
    server = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def served(port: int) -> dict[str, int]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /__hostile/served HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return json.loads(data.partition(b"\r\n\r\n")[2])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=18090)
    args = parser.parse_args()
    srv = serve(args.port)
    print(f"hostile upstream on 127.0.0.1:{srv.server_address[1]}", flush=True)
    threading.Event().wait()
