"""A chunked SSE origin for the time-to-first-byte figure only (stdlib asyncio).

Envoy's direct_response sends a body in one piece, which says nothing about whether a filter
holds back the first event of a stream. This origin behaves like an LLM API: it answers the
headers at once, waits FIRST_DELAY (the "model thinking"), then writes the 60 events of
stream.sse one HTTP/1.1 chunk at a time, EVENT_GAP apart. It serves loopback only and exits
when its parent closes stdin, so a crashed benchmark leaves nothing behind.

usage: sse_origin.py PORT BODIES_DIR
"""
import asyncio
import os
import sys

FIRST_DELAY = 0.010
EVENT_GAP = 0.001


def load_events(bodies):
    with open(os.path.join(bodies, "stream.sse"), "rb") as f:
        raw = f.read()
    return [e + b"\n\n" for e in raw.split(b"\n\n") if e]


async def handle(reader, writer, events):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(FIRST_DELAY)
            for e in events:
                writer.write(b"%x\r\n%s\r\n" % (len(e), e))
                await writer.drain()
                await asyncio.sleep(EVENT_GAP)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port, bodies):
    events = load_events(bodies)
    server = await asyncio.start_server(lambda r, w: handle(r, w, events), "127.0.0.1", port)
    loop = asyncio.get_running_loop()
    # Exit when the parent goes away (stdin reaches EOF).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
