#!/usr/bin/env python3
"""Writes the fuzz seed corpora: fixtures from tests/fixtures (and JSON examples from docs/)
with the small header each target reads off the front of its input.

Usage: seeds.py REPO_ROOT OUT_DIR   -> OUT_DIR/<target>/<seed files>

Split targets (see fuzz/src/lib.rs) read byte 0 as `selector << 4 | n` followed by n chunk
sizes; every fixture is written once whole (n = 0) and once cut into 1/7/64-byte chunks, so the
fuzzer starts from both. The other targets read one selector byte. Seeds are regenerated on
every run, so they follow the fixtures; the fuzzer's own finds go to fuzz/corpus/.
"""

import glob
import gzip
import hashlib
import json
import os
import re
import sys
import zlib

# Large fixtures slow every execution that mutates them; libFuzzer's default max_len also
# follows the largest seed. Fixtures above this are cut (framing targets cope, and the cut
# bodies exercise the truncation paths).
MAX_SEED = 16 * 1024
CUTS = bytes([1, 7, 64])


def header(selector, split):
    sizes = CUTS if split else b""
    return bytes([(selector << 4) | len(sizes)]) + sizes


def fixtures(root, *patterns):
    out = []
    for pattern in patterns:
        out += sorted(glob.glob(os.path.join(root, "tests", "fixtures", pattern)))
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()[:MAX_SEED]


class Writer:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.counts = {}

    def add(self, target, data):
        d = os.path.join(self.out_dir, target)
        os.makedirs(d, exist_ok=True)
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        self.counts[target] = self.counts.get(target, 0) + 1

    def split(self, target, body, selector=0):
        for split in (False, True):
            self.add(target, header(selector, split) + body)

    def selected(self, target, body, selector):
        self.add(target, bytes([selector]) + body)


def doc_json_blocks(root):
    blocks = []
    for path in sorted(glob.glob(os.path.join(root, "docs", "*.md"))):
        with open(path, encoding="utf-8") as f:
            text = f.read()
        blocks += [b.encode() for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    return blocks


def response_api(path):
    """Selector for the response_scanner target: API index (see APIS there)."""
    name = os.path.basename(path)
    if "/anthropic/" in path:
        return 4
    if name.startswith("responses"):
        return 1
    if "embeddings" in name:
        return 2
    if name.startswith("completion"):
        return 3
    return 0


def main():
    root, out_dir = sys.argv[1], sys.argv[2]
    w = Writer(out_dir)

    for p in fixtures(root, "bedrock/*.bin"):
        body = read(p)
        for cap_selector in (0, 3):
            w.split("eventstream", body, cap_selector)
    for p in fixtures(root, "ollama/*.ndjson"):
        w.split("ndjson", read(p), 8)
    for p in fixtures(root, "gemini/*.json"):
        w.split("json_array", read(p))
    for p in fixtures(root, "*/*.sse"):
        w.split("sse", read(p))

    json_files = [p for p in fixtures(root, "*/*.json") if os.path.getsize(p) <= MAX_SEED]
    for p in json_files:
        body = read(p)
        w.split("json_scanner", body, 0)
        w.add("base64", zlib.compress(body)[:48])
    for p in fixtures(root, "*/*.ndjson"):
        w.split("json_scanner", read(p), 1)
    # Selector bit 8: number text asked for (OpenRouter's `usage.cost`).
    for p in fixtures(root, "openrouter/*.json"):
        w.split("json_scanner", read(p), 8)
    for text in (b"Zm9vYmFy", b"Zm9vYg==", b"eyJ0eXBlIjoibWVzc2FnZV9zdGFydCJ9"):
        w.add("base64", text)

    for p in fixtures(root, "openai/*.json", "anthropic/*.json", "azure/*.json", "openrouter/*.json"):
        if p.endswith(".request.json"):
            w.split("request_scanner", read(p))
        else:
            w.split("response_scanner", read(p), response_api(p))
    for p in fixtures(root, "openai/*.sse", "anthropic/*.sse", "openrouter/*.sse"):
        # Content type index 2 (SSE) for the first selectors, 0 (sniffed) for the rest.
        api = response_api(p)
        w.split("response_scanner", read(p), 10 + api)
        w.split("response_scanner", read(p), api)

    # exchange: route selector = API index (5 is the Azure deployment path), +8 gzipped.
    for p in fixtures(root, "openai/*.json", "openai/*.sse", "anthropic/*", "azure/*.json",
                      "openrouter/*.json", "openrouter/*.sse"):
        if p.endswith(".request.json") or p.endswith(".md"):
            continue
        route = 5 if "/azure/" in p else response_api(p)
        body = read(p)
        w.split("exchange", body, route)
        if len(body) < 4096:
            w.split("exchange", body, route + 8)

    for p in fixtures(root, "*/*.json", "*/*.sse"):
        body = read(p)[:4096]
        gz = gzip.compress(body, mtime=0)
        z = zlib.compress(body)
        raw = z[2:-4]
        w.split("decode", gz, 0)
        w.split("decode", z, 1)
        w.split("decode", raw, 1)
        w.split("decode", body, 2)  # round trip, gzip
        w.split("decode", body, 3)  # round trip, deflate

    config_seeds = [b"{}", b"", b'{"attribution":{"feature_header":"x-team"}}']
    for block in doc_json_blocks(root):
        config_seeds.append(block)
        for selector in (0, 1):  # limits document, budget section
            w.selected("budget", block, selector)
    for body in config_seeds:
        w.add("config", body)
    w.selected("budget", b'{"version":"v1","budgets":[{"id":"a","limit_usd":"1.5","window":"day"}]}', 0)
    w.selected("budget", b"\x01" + bytes(56), 2)
    w.selected("budget", b'{"model":"gpt-4o","max_tokens":100000,"messages":[]}', 3)

    litellm = os.path.join(root, "..", "shared", "data", "litellm_model_prices.json")
    if os.path.exists(litellm):
        with open(litellm, encoding="utf-8") as f:
            table = json.load(f)
        items = list(table.items())
        for start in (0, len(items) // 2):
            sample = dict(items[start:start + 15])
            w.selected("pricing", json.dumps(sample).encode(), 0)
    w.selected("pricing", b'{"gpt-4o":{"input_cost_per_token":2.5e-06,"output_cost_per_token":1e-05}}', 0)
    w.selected("pricing", b'{"models":{"my-model":{"input":"0.15","output":"0.6"}},"aliases":{"m":"my-model"}}', 1)
    w.selected("pricing", b"12.500000000001", 2)

    for target, n in sorted(w.counts.items()):
        print(f"seeds {target}: {n}")


if __name__ == "__main__":
    main()
