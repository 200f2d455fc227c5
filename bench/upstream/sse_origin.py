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
            length, chunked = 0, False
            for line in head.split(b"\r\n"):
                low = line.lower()
                if low.startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                elif low.startswith(b"transfer-encoding:") and b"chunked" in low:
                    chunked = True
            if length:
                await reader.readexactly(length)
            elif chunked:
                # A filter that rewrites the request body sends it chunked; read it all, or its
                # bytes would be taken for the next request on this keep-alive connection.
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    if size == 0:
                        await reader.readuntil(b"\r\n")  # no trailers are sent
                        break
                    await reader.readexactly(size + 2)
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
