#!/usr/bin/env python3
"""budget.py — how many connections a process holds under its descriptor
limit, for the end-to-end suite (tests/e2e/run.py).  Plain python sockets.

  budget.py server PORT SOFT
      Sets RLIMIT_NOFILE's soft limit to SOFT, listens on 127.0.0.1:PORT and
      echoes one byte on every connection, keeping them all open.
  budget.py client PORT SOFT
      Sets the soft limit to SOFT, checks getrlimit shows it, then opens
      connections (each echoes a byte) until one fails; prints
      "held N failed-at CALL ERRNO".
"""

import errno
import resource
import select
import socket
import sys


def set_soft(soft):
    """Sets RLIMIT_NOFILE's soft limit and checks getrlimit says so."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    got = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if got != soft:
        print(f"getrlimit says {got}, set {soft}", flush=True)
        sys.exit(1)


def server(port, soft):
    """Echoes one byte on each connection and keeps them all."""
    set_soft(soft)
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port))
    l.listen(4096)
    print("listening", flush=True)
    keep, poll = [], select.poll()
    poll.register(l, select.POLLIN)
    while True:
        for fd, _ in poll.poll():
            if fd == l.fileno():
                c, _ = l.accept()
                keep.append(c)
                poll.register(c, select.POLLIN)
            else:
                c = next(x for x in keep if x.fileno() == fd)
                b = c.recv(1)
                if b:
                    c.sendall(b)
                else:
                    poll.unregister(c)


def client(port, soft):
    """Opens connections until one fails; reports how many and where."""
    set_soft(soft)
    held, call = [], "socket"
    try:
        while True:
            call = "socket"
            s = socket.socket()
            call = "connect"
            s.settimeout(10)
            s.connect(("127.0.0.1", port))
            call = "echo"
            s.sendall(b"x")
            if s.recv(1) != b"x":
                raise OSError(errno.EIO, "no echo")
            held.append(s)
    except OSError as e:
        name = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)
        print(f"held {len(held)} failed-at {call} {name}", flush=True)


def main():
    mode, port, soft = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    {"server": server, "client": client}[mode](port, soft)


if __name__ == "__main__":
    main()
