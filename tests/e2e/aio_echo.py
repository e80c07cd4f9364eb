#!/usr/bin/env python3
"""aio_echo.py — an asyncio echo server and client for the e2e suite.

asyncio is a demanding ordinary user of sockets: open_connection makes a
non-blocking connect (EINPROGRESS), waits for writability in epoll and reads
SO_ERROR; the server accepts non-blocking sockets and both sides rely on
readiness being exact.  Under the rudp shim every one of those calls lands on
the AF_UNIX socketpair that stands in for the TCP socket.

    aio_echo.py server PORT [--v6]
        echo every connection until EOF, then close; prints "listening PORT"
    aio_echo.py client HOST PORT CONNS BYTES [--timeout SECS]
        CONNS concurrent connections each send BYTES of their own random
        data while reading the echo, half-close (write_eof), read to EOF and
        compare by sha256; prints "ok CONNS" (exit 0) or the failures (exit 1)

Exit status 3 when the client's time limit passes.
"""

import asyncio
import hashlib
import random
import sys


async def handle(reader, writer):
    """Echoes one connection until EOF, then closes it."""
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
    except ConnectionError as e:
        print(f"server: {e!r}", file=sys.stderr)
    finally:
        writer.close()


async def serve(port, v6):
    """Runs the echo server forever."""
    host = "::" if v6 else "0.0.0.0"
    server = await asyncio.start_server(handle, host, port, backlog=512)
    print(f"listening {port}", flush=True)
    async with server:
        await server.serve_forever()


async def one(host, port, index, nbytes):
    """Echoes one connection's data; returns None when it came back intact,
    else a description of what went wrong."""
    data = random.Random(index).randbytes(nbytes)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        return f"connect: {e!r}"

    async def send():
        writer.write(data)
        await writer.drain()
        writer.write_eof()

    sender = asyncio.create_task(send())
    try:
        got = await reader.read(-1)
        await sender
    except OSError as e:
        return f"transfer: {e!r}"
    finally:
        writer.close()
    if hashlib.sha256(got).digest() != hashlib.sha256(data).digest():
        return f"echo differs: {len(got)} of {nbytes} bytes, sha256 mismatch"
    return None


async def client(host, port, conns, nbytes, timeout):
    """Runs CONNS connections at once; returns the process exit status."""
    tasks = [one(host, port, i, nbytes) for i in range(conns)]
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout)
    except asyncio.TimeoutError:
        print(f"TIMEOUT after {timeout} s", flush=True)
        return 3
    failures = [(i, r) for i, r in enumerate(results) if r is not None]
    for i, r in failures[:10]:
        print(f"conn {i}: {r}")
    if failures:
        print(f"FAIL {len(failures)} of {conns} connections", flush=True)
        return 1
    print(f"ok {conns}", flush=True)
    return 0


def main(argv):
    """Parses the command line and runs the server or the client."""
    if len(argv) >= 2 and argv[0] == "server":
        asyncio.run(serve(int(argv[1]), "--v6" in argv[2:]))
        return 0
    if len(argv) in (5, 7) and argv[0] == "client":
        timeout = float(argv[6]) if len(argv) == 7 and argv[5] == "--timeout" else 120.0
        return asyncio.run(client(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), timeout))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
