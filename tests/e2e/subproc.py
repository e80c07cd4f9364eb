#!/usr/bin/env python3
"""subproc.py — a program that runs a subprocess while it holds rerouted
connections, for the end-to-end suite (tests/e2e/run.py).  Python's
subprocess makes its child with vfork() and closes descriptors there; the
parent's connections must keep their TCP identity and their bytes.

  subproc.py PORT   listens, connects to itself, runs `true`, then checks
                    both ends' getpeername and carries bytes; prints "ok"
"""

import socket
import subprocess
import sys


def main():
    port = int(sys.argv[1])
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port))
    l.listen(1)
    c = socket.socket()
    c.settimeout(10)
    c.connect(("127.0.0.1", port))
    a, _ = l.accept()
    a.settimeout(10)
    before = (c.getpeername(), a.getpeername(), c.getsockname())
    subprocess.run(["true"], check=True)
    after = (c.getpeername(), a.getpeername(), c.getsockname())
    if before != after:
        print(f"names changed: {before} then {after}", flush=True)
        sys.exit(1)
    c.sendall(b"after the subprocess")
    got = a.recv(64)
    print("ok" if got == b"after the subprocess" else f"got {got!r}", flush=True)


if __name__ == "__main__":
    main()
