#!/usr/bin/env python3
"""listeners.py — servers whose listening sockets share a port, for the
end-to-end suite (tests/e2e/run.py).  Plain python sockets; run under the
shim or not.

  listeners.py reuseport-server PORT WORKERS
      WORKERS processes, each with its own SO_REUSEPORT listener on
      127.0.0.1:PORT (as gunicorn --reuse-port or nginx "reuseport" do),
      each answering every connection with its pid.  Prints "listening N"
      once all listen, then "worker PID exits" when one gets SIGUSR1 and
      closes its listener.
  listeners.py reopen-server PORT JOBS
      One process that, JOBS times, listens on PORT, serves one connection
      (answers "job K"), and closes the listener before the next job.
  listeners.py unprivileged-server PORT JOBS
      Started as root, gives up root for nobody (65534) before it listens,
      as memcached -u and other daemons do; serves JOBS connections
      (answers "uid 65534"), stops its listener with shutdown(SHUT_RD),
      listens again on the same socket and serves one more.  Prints
      "listening uid N", then "done".
  listeners.py client PORT N
      N connections one after the other; prints "served PID..." (the pids
      or job names that answered, sorted, deduplicated) and "ok N".
"""

import os
import signal
import socket
import sys
import time


def listener(port, reuseport):
    """Returns a socket listening on 127.0.0.1:PORT (SO_REUSEADDR, and
    SO_REUSEPORT when asked, as servers set them)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", port))
    s.listen(64)
    return s


def serve_one(lsock, answer, close_listener=False):
    """Accepts one connection, reads its request line, writes |answer|
    (closing the listener first when asked)."""
    conn, _ = lsock.accept()
    with conn:
        conn.settimeout(10)
        conn.recv(64)
        if close_listener:
            lsock.close()
        conn.sendall(answer.encode() + b"\n")


def worker(port, ready_w):
    """One SO_REUSEPORT worker: listens, says so, serves until SIGUSR1,
    then closes its listener and leaves."""
    lsock = listener(port, True)
    stop = []
    signal.signal(signal.SIGUSR1, lambda *a: stop.append(1))
    os.write(ready_w, b"r")
    lsock.settimeout(0.05)
    while not stop:
        try:
            serve_one(lsock, f"pid {os.getpid()}")
        except socket.timeout:
            pass
    lsock.close()
    print(f"worker {os.getpid()} exits", flush=True)
    os._exit(0)


def reuseport_server(port, n):
    """Starts |n| workers, waits for all to listen, then for all to end."""
    ready_r, ready_w = os.pipe()
    pids = []
    for _ in range(n):
        pid = os.fork()
        if pid == 0:
            worker(port, ready_w)
        pids.append(pid)
    for _ in range(n):
        os.read(ready_r, 1)
    print(f"listening {n} {' '.join(map(str, pids))}", flush=True)
    for pid in pids:
        os.waitpid(pid, 0)


def reopen_server(port, jobs):
    """Listens, serves one connection and closes the listener, |jobs|
    times in a row.  The listener closes before the answer goes: the
    client's next connect comes after it, never into its queue (where TCP
    and rudp alike would reset it when the listener closes)."""
    for k in range(jobs):
        lsock = listener(port, False)
        print(f"listening job {k}", flush=True)
        serve_one(lsock, f"job {k}", close_listener=True)
    print("done", flush=True)


def unprivileged_server(port, jobs):
    """Drops root, then listens and serves; listens again after a
    shutdown(SHUT_RD) of the listener and serves once more."""
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    lsock = listener(port, False)
    print(f"listening uid {os.getuid()}", flush=True)
    for _ in range(jobs):
        serve_one(lsock, f"uid {os.getuid()}")
    lsock.shutdown(socket.SHUT_RD)
    lsock.listen(64)
    serve_one(lsock, f"uid {os.getuid()}")
    lsock.close()
    print("done", flush=True)


def ask(port):
    """Connects (retrying while refused: the server between two listens),
    sends a request, returns the answer line."""
    end = time.monotonic() + 10
    while True:
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(10)
        try:
            c.connect(("127.0.0.1", port))
            break
        except ConnectionRefusedError:
            c.close()
            if time.monotonic() > end:
                raise
            time.sleep(0.01)
    with c:
        c.sendall(b"hello\n")
        return c.makefile().readline().strip()


def client(port, n):
    """Asks |n| times; prints who answered, then ok N."""
    answers = [ask(port) for _ in range(n)]
    print("served " + ",".join(sorted(set(a.split()[-1] for a in answers))), flush=True)
    print(f"ok {len(answers)}", flush=True)


def main():
    mode, port = sys.argv[1], int(sys.argv[2])
    n = int(sys.argv[3])
    {"reuseport-server": reuseport_server, "reopen-server": reopen_server,
     "unprivileged-server": unprivileged_server, "client": client}[mode](port, n)


if __name__ == "__main__":
    main()
