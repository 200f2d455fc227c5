"""Synthetic upstream bodies for the Envoy benchmark (stdlib only, deterministic).

Writes into the given directory:
  chat.json       ~1 KB OpenAI chat completion with usage
  stream.sse      OpenAI chat-completions SSE stream: 60 events, usage chunk last, then [DONE]
  embed10m.json   10 MiB embeddings response, usage at the end (where OpenAI puts it)
  embed100m.json  100 MiB embeddings response (memory check only)
  req_chat.json, req_stream.json, req_embed.json  request bodies the client sends

Every response carries the same usage (PROMPT_TOKENS / COMPLETION_TOKENS) so the access-log
sanity check can tell whether each filter really extracted it. Files are rewritten only when
missing, so repeated runs are cheap.
"""
import json
import os
import random
import sys

PROMPT_TOKENS = 1234
COMPLETION_TOKENS = 567
STREAM_EVENTS = 60
WORDS = ("the token meter counts every streamed word and prices it exactly in integer pico "
         "dollars today").split()

USAGE_CHAT = {
    "prompt_tokens": PROMPT_TOKENS,
    "completion_tokens": COMPLETION_TOKENS,
    "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}
HEAD = {"id": "chatcmpl-BenchAbc123", "created": 1764230400, "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default", "system_fingerprint": "fp_0123456789"}


def dumps(obj):
    return json.dumps(obj, separators=(",", ":"))


def chat(rng, target=1024):
    words = []
    while True:
        body = dumps({**HEAD, "object": "chat.completion", "choices": [{
            "index": 0, "message": {"role": "assistant", "content": " ".join(words),
                                    "refusal": None, "annotations": []},
            "logprobs": None, "finish_reason": "stop"}], "usage": USAGE_CHAT})
        if len(body) >= target:
            return body.encode()
        words.append(rng.choice(WORDS))


def stream_events(rng, events=STREAM_EVENTS):
    """The SSE events, one string each (the chunked origin sends them one by one)."""
    chunk = {**HEAD, "object": "chat.completion.chunk"}
    out = [dumps({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": "",
                                                              "refusal": None},
                                        "logprobs": None, "finish_reason": None}], "usage": None})]
    for _ in range(events - 4):
        text = " " + " ".join(rng.choice(WORDS) for _ in range(3))
        out.append(dumps({**chunk, "choices": [{"index": 0, "delta": {"content": text},
                                                "logprobs": None, "finish_reason": None}],
                          "usage": None}))
    out.append(dumps({**chunk, "choices": [{"index": 0, "delta": {}, "logprobs": None,
                                            "finish_reason": "stop"}], "usage": None}))
    out.append(dumps({**chunk, "choices": [], "usage": USAGE_CHAT}))
    out.append("[DONE]")
    return [f"data: {e}\n\n".encode() for e in out]


def embeddings(path, target):
    rng = random.Random(3)
    # A few distinct vectors cycled: generating 100 MB of fresh floats in Python is slow and
    # the scanners do not care whether vectors repeat.
    vectors = []
    for _ in range(16):
        vals = ",".join(f"{'-' if rng.random() < 0.5 else ''}0.0{rng.randrange(10**8):08d}"
                        for _ in range(1536))
        vectors.append(vals)
    written = 0
    with open(path + ".tmp", "wb") as f:
        f.write(b'{"object":"list","data":[')
        i = 0
        while written < target:
            piece = ("," if i else "") + '{"object":"embedding","index":%d,"embedding":[%s]}' % (
                i, vectors[i % len(vectors)])
            b = piece.encode()
            f.write(b)
            written += len(b)
            i += 1
        f.write(('],"model":"text-embedding-3-small","usage":{"prompt_tokens":%d,'
                 '"total_tokens":%d}}' % (PROMPT_TOKENS, PROMPT_TOKENS)).encode())
    os.replace(path + ".tmp", path)


def requests():
    msgs = [{"role": "system", "content": "You are a terse assistant."},
            {"role": "user", "content": "Summarise the benchmark in one sentence."}]
    return {
        "req_chat.json": dumps({"model": "gpt-4o-mini", "messages": msgs}),
        "req_stream.json": dumps({"model": "gpt-4o-mini", "messages": msgs, "stream": True,
                                  "stream_options": {"include_usage": True}}),
        "req_embed.json": dumps({"model": "text-embedding-3-small",
                                 "input": ["benchmark input text"] * 8}),
    }


def write_if_missing(path, make):
    if not os.path.exists(path):
        data = make()
        with open(path + ".tmp", "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())
        os.replace(path + ".tmp", path)


def main(out):
    os.makedirs(out, exist_ok=True)
    write_if_missing(os.path.join(out, "chat.json"), lambda: chat(random.Random(1)))
    write_if_missing(os.path.join(out, "stream.sse"),
                     lambda: b"".join(stream_events(random.Random(2))))
    for name, size in (("embed10m.json", 10 << 20), ("embed100m.json", 100 << 20)):
        p = os.path.join(out, name)
        if not os.path.exists(p):
            embeddings(p, size)
    for name, body in requests().items():
        write_if_missing(os.path.join(out, name), lambda b=body: b)


if __name__ == "__main__":
    main(sys.argv[1])
