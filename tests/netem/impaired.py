#!/usr/bin/env python3
"""impaired.py — transfers through the shim on an impaired network.

DESIGN.md §6 and issue 4: byte-exact transfers through the shim under delay,
loss, reordering, a bottleneck and a partition, each within a bounded time,
on the link that scripts/netem makes (tc netem where the kernel has sch_netem,
else rudp-netem, the NFQUEUE stand-in of tests/netem/nfq-netem.c).

Every test gets its own namespace from `scripts/netem --name NS ...` run with
no command: it holds the namespace until SIGTERM, then kills what is left in
it, prints the link's statistics and deletes it.  The test runs its programs
there with `ip netns exec NS env RUDP_...=... LD_PRELOAD=shim program`:

* a transfer is `socat -u TCP-LISTEN:P,reuseaddr OPEN:out,creat,trunc` and
  `socat -u OPEN:in TCP:127.0.0.1:P` with random data, checked by sha256 and
  by the shim's log (the stream went "over UDP");
* the control test proves the impairment is there: a UDP and a kernel TCP
  and a rudp ping-pong see round trips of at least 2 x delay, and the share
  of packets lost (counted by a one-way UDP blast and by the link's own
  statistics) is near the --loss asked for;
* the partition test inserts iptables DROP rules for the port in the middle
  of a transfer, checks that nothing arrives for 5 s, removes them, and the
  connection must finish the transfer.

The client runs with RUDP_LINGER_MS as long as the test's deadline: socat
closes and exits as soon as it has written everything, and the shim then
waits that long for the data to be acknowledged (the default, 5 s, is less
than a lossy link needs to drain the buffers).

Output: "PASS name (secs, Mbit/s)" with a line of link and rudp statistics,
or "FAIL name: reason" with evidence; last "N passed, N failed".  Exit 0,
1 on a failure, 77 (skip) when not root, without namespaces or socat, or
when there is neither sch_netem nor a built rudp-netem.

    impaired.py --shim build/shim/librudp_shim.so --netem-script scripts/netem
                [--netem-bin build/tests/netem/rudp-netem] [--only NAME...]
                [--list] [--verbose]

The same file is also the small network helper those tests run inside the
namespace: impaired.py --helper {udp-echo,tcp-echo,pingpong,blast,sink} ...
"""

import argparse
import atexit
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

SKIP = 77
MIB = 1 << 20
BASE_PORT = 7600
PYTHON = sys.executable or "python3"
SELF = os.path.abspath(__file__)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(SELF)), "lib"))
from nstest import Failure, Interrupted, clean_env, kill_group, on_signal  # noqa: E402
from nstest import quiet as run  # noqa: E402


LIVE = []  # Popen objects not yet reaped: programs and scripts/netem runs
NAMESPACES = set()  # namespaces asked of scripts/netem and not yet seen gone


def reap(p, timeout=5):
    """Kills Popen |p|'s group unless it has exited, and reaps it."""
    if p.poll() is None:
        kill_group(p)
    try:
        p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    if p in LIVE:
        LIVE.remove(p)


def delete_namespace(ns):
    """Kills whatever is left in our namespace |ns| and deletes it."""
    if run(["ip", "netns", "pids", ns])[0] == 0:
        for pid in run(["ip", "netns", "pids", ns])[1].split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ValueError, ProcessLookupError):
                pass
        run(["ip", "netns", "del", ns])
    NAMESPACES.discard(ns)


def cleanup_all():
    """Stops every process we started and deletes every namespace we asked for."""
    for p in list(LIVE):
        reap(p)
    for ns in list(NAMESPACES):
        delete_namespace(ns)


def sha256_file(path):
    """Returns the hex sha256 of the file at |path|."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def file_size(path):
    """Returns the size of |path|, 0 when it does not exist."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def tail(path, n=6):
    """Returns the last |n| lines of a text file, shortened, for evidence."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return []
    return [line[:240] for line in lines[-n:]]


# ------------------------------------------------------------------- the link

class Link:
    """One impaired namespace made by scripts/netem in hold mode."""

    def __init__(self, runner, name, flags, port, workdir):
        self.runner = runner
        self.ns = f"rudp-imp-{os.getpid()}-{name}"[:40]
        self.port = port
        self.log = os.path.join(workdir, "netem.log")
        self.stats = {}
        self.backend = "?"
        cmd = [runner.netem_script, "--name", self.ns, "--ports", str(port)] + flags
        if runner.netem_bin:
            cmd += ["--bin", runner.netem_bin]
        NAMESPACES.add(self.ns)
        with open(self.log, "wb") as log:
            self.popen = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, env=clean_env(),
                                          start_new_session=True)
        LIVE.append(self.popen)
        self.wait_ready()

    def wait_ready(self, timeout=20):
        """Waits for scripts/netem's ready line; raises Failure otherwise."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            lines = tail(self.log, 50)
            if any(line.startswith("netem: ready") for line in lines):
                self.backend = " ".join(x.split("backend", 1)[1].strip()
                                        for x in lines if "backend" in x)
                return
            if self.popen.poll() is not None:
                raise Failure(f"scripts/netem exited ({self.popen.returncode})", tail(self.log))
            time.sleep(0.05)
        raise Failure("scripts/netem not ready after 20 s", tail(self.log))

    def iptables(self, op, timeout=10):
        """Inserts (op '-I') or deletes (op '-D') DROP rules for the port in
        both directions and both protocols: the partition."""
        for proto in ("udp", "tcp"):
            for d in ("--dport", "--sport"):
                rule = [op, "INPUT"] + (["1"] if op == "-I" else []) + \
                       ["-p", proto, d, str(self.port), "-j", "DROP"]
                rc, out = run(["ip", "netns", "exec", self.ns, "iptables"] + rule, timeout)
                if rc != 0:
                    raise Failure(f"iptables {' '.join(rule)} failed", out.splitlines())

    def close(self):
        """Stops scripts/netem (it tears the namespace down and prints the link's
        statistics, which are parsed into self.stats) and makes sure the
        namespace is gone."""
        if self.popen.poll() is None:
            self.popen.terminate()  # scripts/netem's hold mode: tear down, exit 0
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        reap(self.popen)
        delete_namespace(self.ns)
        for line in tail(self.log, 50):
            if "stats total:" in line:
                self.stats = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}

    def summary(self):
        """Returns the link's statistics as one short string."""
        s = self.stats
        if not s:
            return "link: no statistics"
        seen = max(s.get("seen", 0), 1)
        return (f"link: {s.get('seen', 0)} packets, lost {s.get('lost', 0)} "
                f"({100.0 * s.get('lost', 0) / seen:.1f} %), queue drops "
                f"{s.get('queue_drops', 0)}, duplicated {s.get('duplicated', 0)}")


# --------------------------------------------------------------------- tests

class Test:
    """One test: a link, a work directory, a deadline and the programs it ran."""

    def __init__(self, runner, name, port, limit):
        self.runner = runner
        self.name = name
        self.port = port
        self.deadline = time.monotonic() + limit
        self.limit = limit
        self.dir = tempfile.mkdtemp(prefix=f"rudp-imp-{name}-")
        self.link = None
        self.procs = []
        self.mbit = None
        self.notes = []

    def remaining(self):
        """Returns the seconds left before the test's deadline (at least 0)."""
        return max(self.deadline - time.monotonic(), 0.0)

    def open_link(self, flags):
        """Makes the test's impaired namespace with scripts/netem |flags|."""
        self.link = Link(self.runner, self.name, flags, self.port, self.dir)

    def spawn(self, name, argv, shim=False, env=None):
        """Starts |argv| in the namespace, with the shim when |shim|; stdout and
        stderr go to NAME.out and NAME.err in the test's directory."""
        words = []
        if shim:
            words = [f"RUDP_PORTS={self.port}", "RUDP_LOG=info",
                     f"RUDP_LOG_FILE={os.path.join(self.dir, name + '.rudp')}",
                     f"RUDP_LINGER_MS={int(self.limit * 1000)}",
                     f"LD_PRELOAD={self.runner.shim}"]
        words += [f"{k}={v}" for k, v in (env or {}).items()]
        cmd = ["ip", "netns", "exec", self.link.ns, "env"] + words + [str(a) for a in argv]
        with open(os.path.join(self.dir, name + ".out"), "wb") as out, \
                open(os.path.join(self.dir, name + ".err"), "wb") as err:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=clean_env(), cwd=self.dir, start_new_session=True)
        p.name = name
        LIVE.append(p)
        self.procs.append(p)
        return p

    def evidence(self, p):
        """Returns lines describing program |p| for a failure report."""
        lines = [f"{p.name}: status {p.poll()}"]
        for ext in ("err", "rudp"):
            lines += [f"  {ext}: {x}" for x in tail(os.path.join(self.dir, f"{p.name}.{ext}"), 4)]
        return lines

    def wait(self, p, timeout=None):
        """Waits for |p| up to |timeout| (or the deadline); returns its status.
        Raises Failure, after killing it, when it does not finish in time."""
        timeout = min(timeout if timeout is not None else 1e9, self.remaining())
        try:
            rc = p.wait(timeout=max(timeout, 0.01))
        except subprocess.TimeoutExpired:
            ev = self.evidence(p)
            reap(p)
            raise Failure(f"{p.name} did not finish within {timeout:.0f} s", ev)
        reap(p)
        return rc

    def helper(self, name, *args, shim=False, timeout=60):
        """Runs this file's --helper |args| in the namespace and returns its
        JSON result; raises Failure when it fails."""
        p = self.spawn(name, [PYTHON, SELF, "--helper"] + [str(a) for a in args], shim=shim)
        rc = self.wait(p, timeout)
        if rc != 0:
            raise Failure(f"helper {name} failed ({rc})", self.evidence(p))
        with open(os.path.join(self.dir, name + ".out")) as f:
            return json.loads(f.read() or "{}")

    def wait_line(self, p, ext, word, what, timeout=10):
        """Waits until a line of |p|'s file |ext| ("out", "rudp") contains
        |word|; raises Failure, naming |what|, when |p| exits or time passes."""
        path = os.path.join(self.dir, f"{p.name}.{ext}")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if any(word in x for x in tail(path, 20)):
                return
            if p.poll() is not None:
                raise Failure(f"{p.name} exited ({p.returncode}) before {what}",
                              self.evidence(p))
            time.sleep(0.02)
        raise Failure(f"{p.name} not {what} after {timeout} s", self.evidence(p))

    def wait_ready(self, p, timeout=10):
        """Waits until helper |p| prints "ready" (its socket is bound)."""
        self.wait_line(p, "out", "ready", "ready", timeout)

    def wait_listening(self, p, timeout=10):
        """Waits until the shim under |p| logs that it listens."""
        self.wait_line(p, "rudp", "listening", "listening", timeout)

    def teardown(self):
        """Stops every program and the link, whatever happened."""
        for p in self.procs:
            reap(p)
        if self.link:
            self.link.close()
        if not self.runner.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def rudp_summary(log):
    """Returns the client's stream line from the shim's log, shortened."""
    for line in tail(log, 20):
        m = re.search(r"srtt ([\d.]+) ms.*?(\d+) packets sent, (\d+) lost, (\d+) B retrans", line)
        if m and "stream" in line:
            return (f"rudp: srtt {float(m.group(1)):.1f} ms, {m.group(2)} packets sent, "
                    f"{m.group(3)} lost, {int(m.group(4)) // 1024} KiB retransmitted")
    return "rudp: no statistics"


def transfer(t, size, during=None):
    """Moves |size| random bytes through the shim with two socat processes and
    checks them.  |during|, if given, is called with the server's output
    path while the transfer runs.  Returns the seconds the transfer took."""
    src = os.path.join(t.dir, "in")
    dst = os.path.join(t.dir, "out")
    with open(src, "wb") as f:
        f.write(os.urandom(size))
    server = t.spawn("server", ["socat", "-u", f"TCP-LISTEN:{t.port},reuseaddr",
                                f"OPEN:{dst},creat,trunc"], shim=True)
    t.wait_listening(server)
    start = time.monotonic()
    client = t.spawn("client", ["socat", "-u", f"OPEN:{src}", f"TCP:127.0.0.1:{t.port}"],
                     shim=True)
    if during:
        during(dst)
    rc_c = t.wait(client)
    rc_s = t.wait(server)
    secs = time.monotonic() - start
    got = file_size(dst)
    if rc_c != 0 or rc_s != 0:
        raise Failure(f"socat failed (client {rc_c}, server {rc_s}), {got} of {size} bytes "
                      "arrived", t.evidence(client) + t.evidence(server))
    if got != size or sha256_file(src) != sha256_file(dst):
        raise Failure(f"data differ: {got} of {size} bytes, sha256 mismatch",
                      t.evidence(client) + t.evidence(server))
    log = os.path.join(t.dir, "client.rudp")
    if not any("over UDP" in x for x in tail(log, 20)):
        raise Failure("the shim's log does not say the stream went over UDP",
                      t.evidence(client))
    t.mbit = size * 8 / secs / 1e6
    t.notes.append(rudp_summary(log))
    return secs


TESTS = []


def test(name, limit):
    """Registers a test function under |name| with a hard time |limit|."""
    def register(fn):
        TESTS.append((name, limit, fn))
        return fn
    return register


def lossy(size, loss):
    """A transfer of |size| bytes at 40 ms RTT and |loss| % random loss."""
    def body(t):
        t.open_link(["--delay", "20", "--loss", str(loss), "--seed", str(t.port)])
        transfer(t, size)
    return body


@test("control-link", 120)
def t_control(t):
    """The impairment is real: RTTs >= 2 x delay for UDP, kernel TCP and rudp,
    and about the asked loss, seen by the receiver and by the link."""
    t.open_link(["--delay", "20", "--loss", "10", "--seed", "7"])
    for kind, shim in (("udp", False), ("tcp", False), ("tcp", True)):
        server = t.spawn(f"echo-{kind}{'-rudp' if shim else ''}",
                         [PYTHON, SELF, "--helper", f"{kind}-echo", t.port], shim=shim)
        t.wait_ready(server)
        if shim:
            t.wait_listening(server)
        name = f"ping-{kind}{'-rudp' if shim else ''}"
        r = t.helper(name, "pingpong", kind, t.port, 40, shim=shim)
        reap(server)
        label = "rudp" if shim else f"kernel {kind}"
        if r.get("count", 0) < 10 or r["min_ms"] < 40.0 or r["min_ms"] > 60.0:
            raise Failure(f"{label} ping-pong: {r} (want >= 10 replies, 40 <= min RTT <= 60 ms)")
        t.notes.append(f"{label} RTT min {r['min_ms']:.1f} ms, median {r['median_ms']:.1f} ms "
                       f"({r['count']} replies)")
    sink = t.spawn("sink", [PYTHON, SELF, "--helper", "sink", t.port, 8])
    t.wait_ready(sink)
    t.helper("blast", "blast", t.port, 3000, timeout=30)
    t.wait(sink, 15)
    with open(os.path.join(t.dir, "sink.out")) as f:
        got = json.loads(f.read().splitlines()[-1])["received"]
    frac = 1 - got / 3000
    t.notes.append(f"one-way blast: {got} of 3000 datagrams arrived ({100 * frac:.1f} % lost)")
    if not 0.07 <= frac <= 0.13:
        raise Failure(f"blast lost {100 * frac:.1f} %, want 10 % (7-13)")
    t.link.close()
    s = t.link.stats
    lf = s.get("lost", 0) / max(s.get("seen", 0), 1)
    if s.get("seen", 0) < 3000 or not 0.07 <= lf <= 0.13:
        raise Failure(f"link statistics {s}: want >= 3000 packets and about 10 % lost")


test("loss1", 180)(lossy(4 * MIB, 1))
test("loss5", 180)(lossy(2 * MIB, 5))
test("loss10", 180)(lossy(1 * MIB, 10))


@test("jitter", 180)
def t_jitter(t):
    """Reordering: 20 ms one-way plus a uniform 0-10 ms, so packets overtake."""
    t.open_link(["--delay", "20", "--jitter", "10", "--seed", "3"])
    transfer(t, 2 * MIB)


@test("bottleneck", 180)
def t_bottleneck(t):
    """A 20 Mbit/s bottleneck with a 30-packet drop-tail queue at 40 ms RTT;
    the goodput must stay under the rate (the limit applies)."""
    t.open_link(["--delay", "20", "--rate", "20", "--queue", "30", "--seed", "5"])
    transfer(t, 8 * MIB)
    if t.mbit > 20 * 1.02:
        raise Failure(f"{t.mbit:.1f} Mbit/s through a 20 Mbit/s bottleneck: no rate limit?")


@test("dup", 180)
def t_dup(t):
    """5 % of packets duplicated at 40 ms RTT."""
    t.open_link(["--delay", "20", "--dup", "5", "--seed", "9"])
    transfer(t, 4 * MIB)
    t.link.close()
    if "duplicated" in t.link.stats and t.link.stats["duplicated"] == 0:
        raise Failure(f"the link duplicated nothing: {t.link.stats}")


@test("partition", 180)
def t_partition(t):
    """A 5 s partition in the middle of a transfer that then heals: nothing
    arrives while it lasts, and the connection finishes the transfer."""
    t.open_link(["--delay", "20", "--rate", "20", "--queue", "50", "--seed", "11"])
    size = 8 * MIB
    seen = {}

    def partition(dst):
        end = time.monotonic() + 60
        while file_size(dst) < size // 4:
            if time.monotonic() > end or all(p.poll() is not None for p in t.procs):
                raise Failure(f"transfer did not reach {size // 4} bytes to partition")
            time.sleep(0.01)
        t.link.iptables("-I")
        try:
            time.sleep(0.5)  # what was in flight lands
            seen["at"] = file_size(dst)
            time.sleep(4.5)
            seen["end"] = file_size(dst)
        finally:
            t.link.iptables("-D")

    transfer(t, size, during=partition)
    if seen["end"] != seen["at"]:
        raise Failure(f"data arrived during the partition ({seen['at']} -> {seen['end']})")
    t.notes.append(f"partitioned 5 s at {seen['at']} of {size} bytes")


# ------------------------------------------------------------------ helpers

def helper_main(argv):
    """The programs the tests run inside the namespace; each prints JSON."""
    kind = argv[0]
    if kind in ("udp-echo", "tcp-echo"):
        echo_server(kind[:3], int(argv[1]))
    elif kind == "pingpong":
        print(json.dumps(pingpong(argv[1], int(argv[2]), int(argv[3]))))
    elif kind == "blast":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(int(argv[2])):
            s.sendto(b"%08d" % i + b"." * 192, ("127.0.0.1", int(argv[1])))
            time.sleep(0.001)
        print(json.dumps({"sent": int(argv[2])}))
    elif kind == "sink":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind(("127.0.0.1", int(argv[1])))
        print("ready", flush=True)
        end, got = time.monotonic() + float(argv[2]), set()
        while time.monotonic() < end:
            s.settimeout(max(end - time.monotonic(), 0.01))
            try:
                got.add(s.recv(4096)[:8])
            except socket.timeout:
                break
        print(json.dumps({"received": len(got)}))
    return 0


def echo_server(kind, port):
    """Echoes datagrams (udp) or one connection's bytes (tcp) until killed."""
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", port))
        print("ready", flush=True)
        while True:
            data, peer = s.recvfrom(4096)
            s.sendto(data, peer)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(4)
    print("ready", flush=True)
    c, _ = ls.accept()
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while True:
        data = c.recv(4096)
        if not data:
            return
        c.sendall(data)


def pingpong(kind, port, count):
    """Sends |count| 32-byte probes one at a time and returns the round trips
    (a UDP probe that gets no answer in 1 s is counted lost)."""
    rtts = []
    if kind == "udp":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(1.0)
        for i in range(count):
            probe = b"%08d" % i + b"p" * 24
            t0 = time.monotonic()
            s.sendto(probe, ("127.0.0.1", port))
            try:
                while s.recv(64) != probe:
                    pass
                rtts.append(time.monotonic() - t0)
            except socket.timeout:
                pass
    else:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(count):
            probe = b"%08d" % i + b"p" * 24
            t0 = time.monotonic()
            s.sendall(probe)
            got = b""
            while len(got) < len(probe):
                part = s.recv(64)
                if not part:
                    raise SystemExit("connection closed")
                got += part
            rtts.append(time.monotonic() - t0)
        s.close()
    ms = [1000 * r for r in rtts] or [0.0]
    return {"count": len(rtts), "min_ms": min(ms), "median_ms": statistics.median(ms)}


# ------------------------------------------------------------------- runner

class Runner:
    """Parses the arguments, decides whether the suite can run, runs it."""

    def __init__(self, args):
        self.shim = os.path.abspath(args.shim)
        self.netem_script = os.path.abspath(args.netem_script)
        self.netem_bin = os.path.abspath(args.netem_bin) if args.netem_bin else None
        self.keep = args.keep
        self.verbose = args.verbose

    def skip_reason(self):
        """Returns why this machine cannot run the suite, or None."""
        if os.geteuid() != 0:
            return "needs root (network namespaces, iptables)"
        for tool in ("ip", "iptables", "socat", "tc"):
            if shutil.which(tool) is None:
                return f"{tool} is not installed"
        probe = f"rudp-imp-{os.getpid()}-probe"
        NAMESPACES.add(probe)
        rc, _ = run(["ip", "netns", "add", probe])
        if rc != 0:
            NAMESPACES.discard(probe)
            return "cannot make network namespaces"
        rc, _ = run(["ip", "netns", "exec", probe, "tc", "qdisc", "add", "dev", "lo",
                     "root", "netem", "delay", "0ms"])
        delete_namespace(probe)
        if rc != 0 and not (self.netem_bin and os.access(self.netem_bin, os.X_OK)):
            return ("the kernel has no sch_netem and rudp-netem is not built "
                    "(install libnetfilter-queue-dev and reconfigure)")
        return None

    def run_one(self, n, name, limit, fn):
        """Runs one test, prints its line, returns whether it passed."""
        t = Test(self, name, BASE_PORT + n, limit)
        start = time.monotonic()
        try:
            fn(t)
            ok, reason, details = True, None, []
        except Failure as e:
            ok, reason, details = False, str(e), e.details
        except Exception as e:  # a bug in the harness: report it, clean up, go on
            ok, reason, details = False, f"harness error: {e!r}", []
        finally:
            t.teardown()
        secs = time.monotonic() - start
        if ok and secs > limit:
            ok, reason = False, f"took {secs:.0f} s, more than its {limit} s"
        if ok:
            rate = f", {t.mbit:.1f} Mbit/s" if t.mbit is not None else ""
            print(f"PASS {name} ({secs:.1f} s{rate})")
            lines = []
        else:
            print(f"FAIL {name}: {reason}")
            lines = list(details)
        if t.link and (self.verbose or not ok):
            lines.append(f"backend {t.link.backend}")
        if t.link:
            lines.append(t.link.summary())
        for line in lines + t.notes:
            print(f"  {line}")
        sys.stdout.flush()
        return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shim")
    ap.add_argument("--netem-script")
    ap.add_argument("--netem-bin")
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directories")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--helper", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    if args.helper:
        return helper_main(args.helper)
    if args.list:
        print("\n".join(name for name, _, _ in TESTS))
        return 0
    if not args.shim or not args.netem_script:
        ap.error("--shim and --netem-script are required")
    runner = Runner(args)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    atexit.register(cleanup_all)
    try:
        why = runner.skip_reason()
        if why:
            print(f"SKIP impaired: {why}")
            return SKIP
        passed = failed = 0
        for n, (name, limit, fn) in enumerate(TESTS):
            if args.only and name not in args.only:
                continue
            if runner.run_one(n, name, limit, fn):
                passed += 1
            else:
                failed += 1
        print(f"{passed} passed, {failed} failed")
        return 1 if failed else 0
    except Interrupted as e:
        print(f"interrupted ({e}); cleaning up", flush=True)
        return 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not stop the cleanup
        cleanup_all()


if __name__ == "__main__":
    sys.exit(main())
