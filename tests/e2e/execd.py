#!/usr/bin/env python3
"""execd.py — a connection that lives through exec without fork, for the
end-to-end suite (tests/e2e/run.py): the server process that accepted it
re-executes itself (as sshd does per connection, or an inetd-style server)
and the new image serves it.

  execd.py server PORT [fork]
                            accepts one connection, echoes a first message,
                            then execs "execd.py after FD PEER" on it (with
                            "fork": in a child, as sshd does, the parent
                            closing its copy and waiting)
  execd.py after FD PEER    the new image: checks getpeername is PEER and the
                            socket says TCP, echoes until EOF
  execd.py client PORT N    sends N bytes, reads the echo, sends N more (they
                            reach the new image), reads them, half-closes,
                            reads EOF; prints "ok SHA256" of all it read
"""

import hashlib
import os
import socket
import struct
import sys


def recv_exact(s, n):
    """Reads exactly n bytes (or fails)."""
    out = bytearray()
    while len(out) < n:
        b = s.recv(min(65536, n - len(out)))
        if not b:
            raise EOFError(f"EOF after {len(out)} of {n} bytes")
        out += b
    return bytes(out)


def server(port, fork):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port))
    l.listen(8)
    print("listening", flush=True)
    c, peer = l.accept()
    n = struct.unpack("!I", recv_exact(c, 4))[0]
    c.sendall(recv_exact(c, n))
    fd = os.dup(c.fileno())
    os.set_inheritable(fd, True)
    if fork:
        pid = os.fork()
        if pid:
            os.close(fd)
            c.close()
            _, status = os.waitpid(pid, 0)
            sys.exit(os.waitstatus_to_exitcode(status))
    script = os.path.abspath(__file__)
    os.execv(sys.executable, [sys.executable, script, "after", str(fd), f"{peer[0]}:{peer[1]}"])


def after(fd, peer):
    s = socket.socket(fileno=int(fd))
    got = s.getpeername()
    if f"{got[0]}:{got[1]}" != peer:
        print(f"getpeername {got} after exec, {peer} before", flush=True)
        sys.exit(1)
    if s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) != socket.IPPROTO_TCP:
        print("SO_PROTOCOL is not TCP after exec", flush=True)
        sys.exit(1)
    while True:
        b = s.recv(65536)
        if not b:
            break
        s.sendall(b)
    s.shutdown(socket.SHUT_WR)
    print("after ok", flush=True)


def client(port, n):
    s = socket.socket()
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    h = hashlib.sha256()
    first, second = os.urandom(n), os.urandom(n)
    s.sendall(struct.pack("!I", n) + first)
    h.update(recv_exact(s, n))
    s.sendall(second)
    h.update(recv_exact(s, n))
    s.shutdown(socket.SHUT_WR)
    if s.recv(1) != b"":
        print("no EOF", flush=True)
        sys.exit(1)
    want = hashlib.sha256(first + second).hexdigest()
    print("ok" if h.hexdigest() == want else "sha256 differs", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "server":
        server(int(sys.argv[2]), sys.argv[3:] == ["fork"])
    elif mode == "after":
        after(sys.argv[2], sys.argv[3])
    else:
        client(int(sys.argv[2]), int(sys.argv[3]))


if __name__ == "__main__":
    main()
