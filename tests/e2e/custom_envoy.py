"""Envoy with a test-specific bootstrap (extra filters, routes, log fields) and a raw HTTP/1.1
client that tolerates broken responses, for the hardening suites (hostile, identity, soak).

The bootstrap is still envoy/bootstrap.yaml patched by harness.bootstrap_config; `mutate` then
edits the parsed config, so every suite runs the shipped filter chain plus only its additions.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

from .harness import WASM, Envoy, start_envoy


def hcm(config: dict) -> dict:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]


def add_log_fields(config: dict, fields: dict[str, str]) -> None:
    hcm(config)["access_log"][0]["typed_config"]["log_format"]["json_format"].update(fields)


def start_custom_envoy(workdir: Path, upstream_port: int, *, plugin_config: str = "{}",
                       mutate: Callable[[dict], None] | None = None, wasm: Path = WASM) -> Envoy:
    return start_envoy(workdir, upstream_port, wasm=wasm, plugin_config=plugin_config, mutate=mutate)


def raw_request(port: int, method: str, path: str, headers: dict[str, str], body: bytes = b"",
                timeout: float = 60, sink=None) -> tuple[int, dict[str, str], bytes, bool]:
    """One HTTP/1.1 exchange on a fresh connection, read until the server closes it.

    Returns (status, headers, body, complete). A chunked body is decoded as far as it goes,
    so a response cut by a reset yields the bytes that did arrive and `complete=False`. With
    `sink`, body bytes are passed to it instead of being kept (for the 100 MB body)."""
    head = f"{method} {path} HTTP/1.1\r\nhost: llm\r\nconnection: close\r\n"
    head += f"content-length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode() + b"\r\n" + body)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = _recv(s)
            if not chunk:
                return 0, {}, b"", False
            buf += chunk
        raw_head, _, rest = buf.partition(b"\r\n\r\n")
        lines = raw_head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        out = bytearray()
        emit = sink or out.extend
        if hdrs.get("transfer-encoding") == "chunked":
            complete = _read_chunked(s, rest, emit)
        else:
            want = int(hdrs["content-length"]) if "content-length" in hdrs else None
            got = len(rest)
            emit(rest)
            while want is None or got < want:
                chunk = _recv(s)
                if not chunk:
                    break
                got += len(chunk)
                emit(chunk)
            complete = want is None or got == want
        return status, hdrs, bytes(out), complete


def _recv(s: socket.socket) -> bytes:
    try:
        return s.recv(1 << 20)
    except (ConnectionResetError, socket.timeout):
        return b""


def _read_chunked(s: socket.socket, buf: bytes, emit) -> bool:
    while True:
        while b"\r\n" not in buf:
            more = _recv(s)
            if not more:
                return False
            buf += more
        size_line, _, buf = buf.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(buf) < size + 2:
            more = _recv(s)
            if not more:
                emit(buf[:size])
                return False
            buf += more
        emit(buf[:size])
        buf = buf[size + 2:]
        if size == 0:
            return True
