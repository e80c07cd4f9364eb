#!/usr/bin/env python3
"""run.py — the soak suite: one server and one client under the shim for
minutes of mixed load on an impaired link, with partitions and address
changes, while their memory and file descriptors are watched (issue 13).

    tests/soak/run.py [--shim build/shim/librudp_shim.so]
        [--tool build/tests/e2e/rudp-e2e-tool] [--netem-bin build/tests/netem/rudp-netem]
        [--duration SECONDS] [--churn N] [--bulk N]
        [--without partitions|rebinds] [--keep]

`--duration` is the length of the load, 600 s by default: the 10-minute
soak, run by hand (as root, from the repository, after a build):

    sudo tests/soak/run.py --duration 600

`meson test -C build --suite soak` (and so scripts/test and CI) runs the
2-minute version, `--duration 120`.  `--churn` and `--bulk` set the
client's threads (8 and 1), `--without` leaves out the partitions or the
rebinds (to tell apart what fails), `--keep` keeps the scratch directory
(each process's output and rudp log).

The network.  Three namespaces (rudp-soak-<pid>-{c,r,s}): the client
(10.79.1.2) and the server (10.79.2.2) are joined through a router by two
veth pairs.  The router NATs the client (SNAT to 10.79.2.10 or 10.79.2.11,
random port) and impairs the test port's UDP in its FORWARD hook with
rudp-netem (tests/netem/nfq-netem.c, docs/NETEM.md): 20 ms one way, 1 %
random loss, a 20 Mbit/s bottleneck with a 50-packet queue, each direction
on its own.  TCP on the port is dropped in all three namespaces, so nothing
can fall back to kernel TCP unnoticed: the DROP counters must stay at 0.

The load.  One `rudp-e2e-tool echo-server --mode epoll` (one thread, every
connection) and one `rudp-e2e-tool soak-client` for the whole run.  The
client holds 8 idle connections from start to end (each must still echo
both ways and close cleanly at the end), runs 8 churn threads (connect,
echo 1 KiB of a fresh pattern, close, as fast as they go) and one bulk
thread (4 MiB echoed on a fresh connection, again and again).  Every byte
is checked against its deterministic pattern; the client's first failure
ends the run.  Every 60 s, from t=20 s, the router drops all UDP for 5 s (a
partition, far shorter than the 30 s idle timeout), and every 60 s, from
t=50 s, it changes the client's public address and port (a NAT rebinding:
the SNAT rule flips and the flow's conntrack entry is deleted); the server
must then talk to the new address and no longer to the old one, in the
same session (its log shows one session in the whole run).  A partition
that dropped nothing or a rebind the server did not follow is reported
when it is seen, and the run goes on to show what follows from it; it
fails at the end.

The trend rule.  Every 10 s the runner reads VmRSS from /proc/PID/status and
counts /proc/PID/fd for both processes.  Samples of the first
min(60 s, duration/4) are warm-up and are printed but not judged.  Over
the rest, slopes are Theil-Sen estimates (the median of the slopes between
every pair of samples: one odd sample cannot tilt it; the least-squares
slope is printed beside it), taken over the whole window and over each of
its halves.  A process fails when

  * its sustained RSS slope (the least of the three: a leak rises over the
    whole run and in each half, a one-off step of the allocator shows in
    one half only), projected over a 10-minute soak (600 s, whatever the
    run's length, so the 2-minute run is as strict about the rate),
    exceeds 4 MiB.  With the churn's thousands of connections a minute
    that is a few tens of bytes per connection (the runner prints the bytes
    per churn connection the whole slope amounts to); or
  * the fewest fds of its last three samples exceed the fewest of its first
    three judged ones by more than 4 (the count moves with the connections
    in flight; a leaked fd stays).  The fd slope is printed, not judged: two
    fds of noise over a 2-minute run would project to a dozen over 10.

Output: the link, every event and sample as it happens, the trend table,
then "PASS soak (...)" or "FAIL soak: reason" with evidence, and "N passed,
N failed".  Exit 0, 1 on failure, 77 (skip) when not root or when
namespaces or rudp-netem are missing.
"""

import argparse
import atexit
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
from nstest import (LIVE_NAMESPACES, Failure, Interrupted, Proc, cleanup_all, must,
                    ns_delete, on_signal, quiet)  # noqa: E402

PORT = 7900
CLI, RTR_C, RTR_S, SRV = "10.79.1.2", "10.79.1.1", "10.79.2.1", "10.79.2.2"
NAT = ("10.79.2.10", "10.79.2.11")  # the client's public addresses, in turn
LINK = ["--delay", "20", "--loss", "1", "--rate", "20", "--queue", "50"]

SAMPLE_EVERY = 10              # seconds between samples
PERIOD = 60                    # seconds between partitions, and between rebinds
PARTITION_AT, PARTITION_LEN = 20, 5
REBIND_AT = 50
HORIZON = 600                  # a slope is judged by what it makes over 10 minutes
RSS_BOUND_KIB = 4096
FD_SLACK = 4


# ------------------------------------------------------------- the network

class Soak:
    """The run: its three namespaces, scratch directory, processes and
    deadline (nstest.Proc asks it for .dir and .remaining())."""

    def __init__(self, args):
        self.args = args
        self.duration = args.duration
        self.deadline = time.monotonic() + args.duration + 240
        base = f"rudp-soak-{os.getpid()}"
        self.ns = {role: f"{base}-{role}" for role in "crs"}
        self.dir = tempfile.mkdtemp(prefix="rudp-soak-")
        self.procs = []
        self.nat = 0  # index in NAT of the client's public address

    def remaining(self):
        """Returns the seconds left before the run's deadline (>= 0)."""
        return max(self.deadline - time.monotonic(), 0.0)

    def run(self, role, *cmd):
        """Runs a harness command in |role|'s namespace; returns its output."""
        return must(["ip", "netns", "exec", self.ns[role]] + [str(c) for c in cmd])

    def ipt(self, role, *rule):
        """Runs iptables with |rule| in |role|'s namespace."""
        return self.run(role, "iptables", "-w", "5", *rule)

    def setup(self):
        """Makes the namespaces, the two links through the router, the NAT,
        the TCP-drop rules and the impairment."""
        for role, ns in self.ns.items():
            must(["ip", "netns", "add", ns])
            LIVE_NAMESPACES.add(ns)
            must(["ip", "-n", ns, "link", "set", "lo", "up"])
        r = self.ns["r"]
        for role, near, addr, gw in (("c", "r-c", CLI, RTR_C), ("s", "r-s", SRV, RTR_S)):
            must(["ip", "-n", r, "link", "add", near, "type", "veth", "peer", "name", "eth0",
                  "netns", self.ns[role]])
            must(["ip", "-n", r, "addr", "add", f"{gw}/24", "dev", near])
            must(["ip", "-n", r, "link", "set", near, "up"])
            must(["ip", "-n", self.ns[role], "addr", "add", f"{addr}/24", "dev", "eth0"])
            must(["ip", "-n", self.ns[role], "link", "set", "eth0", "up"])
            must(["ip", "-n", self.ns[role], "route", "add", "default", "via", gw])
        for a in NAT:
            must(["ip", "-n", r, "addr", "add", f"{a}/24", "dev", "r-s"])
        for role in "crs":
            self.sysctls(role)
        self.run("r", "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
        self.rules()

    def sysctls(self, role):
        """Turns reverse-path filtering and IPv6 off in |role|'s namespace."""
        rc, out = quiet(["ip", "-n", self.ns[role], "-o", "link", "show"])
        ifaces = ["all", "default"] + [l.split(":")[1].strip().split("@")[0]
                                       for l in out.splitlines() if ":" in l]
        words = [f"net.ipv4.conf.{i}.rp_filter=0" for i in ifaces]
        words += ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        self.run(role, "sysctl", "-q", "-w", *words)

    def rules(self):
        """TCP on the port is dropped everywhere; the router NATs the client
        and counts what the server sends to each public address."""
        for role, chains in (("c", ("INPUT", "OUTPUT")), ("s", ("INPUT", "OUTPUT")),
                             ("r", ("FORWARD",))):
            for chain in chains:
                for flag in ("--dport", "--sport"):
                    self.ipt(role, "-A", chain, "-p", "tcp", flag, PORT, "-j", "DROP")
        for i, a in enumerate(NAT):
            self.ipt("r", "-t", "mangle", "-A", "PREROUTING", "-i", "r-s", "-p", "udp",
                     "--sport", PORT, "-d", a, "-m", "comment", "--comment", f"to-nat{i}")
        self.ipt("r", "-t", "nat", "-A", "POSTROUTING", *self.snat(0))

    def snat(self, i):
        """Returns the SNAT rule that gives the client public address NAT[i]
        and a random port."""
        return ["-o", "r-s", "-s", f"{CLI}/32", "-p", "udp", "-j", "SNAT", "--to-source",
                f"{NAT[i]}:1024-65535", "--random"]

    def start_link(self):
        """Starts rudp-netem in the router and sends the port's UDP to it:
        queue 0 towards the server, queue 1 back."""
        p = self.spawn("r", "netem", [self.args.netem_bin, "--queue-num", "0", "--seed",
                                      "13"] + LINK)
        end = time.monotonic() + 10
        while "rudp-netem: ready" not in p.err():
            if p.popen.poll() is not None or time.monotonic() > end:
                raise Failure("rudp-netem did not start", p.evidence())
            time.sleep(0.05)
        for flag, q in (("--dport", 0), ("--sport", 1)):
            self.ipt("r", "-A", "FORWARD", "-p", "udp", flag, PORT, "-j", "NFQUEUE",
                     "--queue-num", q)
        return p

    def spawn(self, role, name, argv, shim=False):
        """Starts |argv| in |role|'s namespace, under the shim when |shim|
        (its log in NAME.rudp, its state directory its own)."""
        words = []
        if shim:
            state = os.path.join(self.dir, f"state-{name}")
            os.makedirs(state, mode=0o700, exist_ok=True)
            words = [f"LD_PRELOAD={self.args.shim}", f"RUDP_PORTS={PORT}",
                     f"RUDP_STATE_DIR={state}", "RUDP_LOG=info",
                     f"RUDP_LOG_FILE={os.path.join(self.dir, name + '.rudp')}"]
        p = Proc(self, self.ns[role], name, [str(a) for a in argv], words)
        self.procs.append(p)
        return p

    def counter(self, table, chain, name):
        """Returns the packets counted by the router's rule commented |name|."""
        out = self.ipt("r", "-t", table, "-L", chain, "-v", "-x", "-n")
        for line in out.splitlines():
            if f"/* {name} */" in line:
                return int(line.split()[0])
        raise Failure(f"no rule {name} in the router's {table} {chain}")

    def partition(self, on):
        """Starts (DROP every UDP packet the router forwards) or ends a
        partition; returns the packets the partition dropped when it ends."""
        if on:
            self.ipt("r", "-I", "FORWARD", "1", "-p", "udp", "-m", "comment", "--comment",
                     "partition", "-j", "DROP")
            return 0
        n = self.counter("filter", "FORWARD", "partition")
        self.ipt("r", "-D", "FORWARD", "-p", "udp", "-m", "comment", "--comment",
                 "partition", "-j", "DROP")
        return n

    def rebind(self):
        """Moves the client to its other public address (and a new random
        port): flips the SNAT rule and deletes the flow's conntrack entry."""
        self.nat = 1 - self.nat
        self.ipt("r", "-t", "nat", "-R", "POSTROUTING", "1", *self.snat(self.nat))
        rc, out = quiet(["ip", "netns", "exec", self.ns["r"], "conntrack", "-D", "-p", "udp",
                         "--orig-src", CLI])
        m = re.search(r"(\d+) flow entries have been deleted", out)
        if not m or int(m.group(1)) == 0:
            raise Failure("conntrack deleted no entry of the client", [out.strip()])

    def to_nat(self):
        """Returns the packets the server has sent to each public address."""
        return [self.counter("mangle", "PREROUTING", f"to-nat{i}") for i in range(2)]

    def tcp_dropped(self):
        """Returns the TCP packets on the port the DROP rules caught."""
        n = 0
        for role in "crs":
            for line in self.ipt(role, "-L", "-v", "-x", "-n").splitlines():
                f = line.split()
                if f and f[0].isdigit() and "DROP" in f and "tcp" in f:
                    n += int(f[0])
        return n

    def teardown(self):
        """Kills the processes and deletes the namespaces (and, unless
        --keep, the scratch directory)."""
        for p in self.procs:
            p.stop()
        for ns in self.ns.values():
            ns_delete(ns)
        if self.args.keep:
            print(f"kept {self.dir}", flush=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- samples

def sample(pid):
    """Returns (VmRSS in KiB, open fds) of process |pid|."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return rss, len(os.listdir(f"/proc/{pid}/fd"))


def theil_sen(ts, ys):
    """Returns the median of the slopes between every pair of points."""
    return statistics.median((ys[j] - ys[i]) / (ts[j] - ts[i])
                             for i in range(len(ts)) for j in range(i + 1, len(ts)))


def least_squares(ts, ys):
    """Returns the least-squares slope of ys over ts."""
    mt, my = statistics.fmean(ts), statistics.fmean(ys)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / \
        sum((t - mt) ** 2 for t in ts)


def rss_rule(name, ts, rss, churned, duration):
    """The RSS rule over the judged samples: the rise that holds over the
    whole window and over each half of it (a leak rises everywhere; a
    one-off step or spike shows in one half only), projected over HORIZON.
    Returns (the failure or None, the report line)."""
    mid = len(ts) // 2
    whole, ls = theil_sen(ts, rss), least_squares(ts, rss)
    halves = theil_sen(ts[:mid + 1], rss[:mid + 1]), theil_sen(ts[mid:], rss[mid:])
    rate = min(whole, *halves)
    grow = rate * HORIZON
    per_conn = f"{whole * 1024 / (churned / duration):+.1f}" if churned else "n/a"
    line = (f"{name} rss: {rss[0]} -> {rss[-1]} KiB over t={ts[0]}..{ts[-1]} s; slope "
            f"{whole * 60:+.1f} KiB/min (halves {halves[0] * 60:+.1f}, "
            f"{halves[1] * 60:+.1f}; least squares {ls * 60:+.1f}), {per_conn} B per "
            f"churn connection; sustained {rate * 60:+.1f} KiB/min -> "
            f"{grow / 1024:+.2f} MiB per {HORIZON} s (bound {RSS_BOUND_KIB / 1024:.0f} MiB)")
    if grow <= RSS_BOUND_KIB:
        return None, line
    return (f"{name} RSS rises: {rate * 60:+.1f} KiB/min, {grow / 1024:+.2f} MiB per "
            f"{HORIZON} s (bound {RSS_BOUND_KIB / 1024:.0f} MiB)"), line


def fd_rule(name, ts, fds):
    """The fd rule: the fewest fds of the last three samples against the
    fewest of the first three.  Returns (the failure or None, the line)."""
    start, end = min(fds[:3]), min(fds[-3:])
    line = (f"{name} fds: fewest of the first 3 {start}, of the last 3 {end} (slack "
            f"{FD_SLACK}); slope {theil_sen(ts, fds) * 60:+.2f} /min")
    if end <= start + FD_SLACK:
        return None, line
    return f"{name} fds rise: {start} -> {end} (slack {FD_SLACK})", line


def judge(name, samples, warmup, churned, duration):
    """Applies the trend rules to one process's samples [(t, rss, fds)];
    returns (failure reasons, report lines)."""
    kept = [s for s in samples if s[0] >= warmup]
    if len(kept) < 5:  # only when the run ended early: --duration is >= 90
        return [], [f"{name}: only {len(kept)} samples after the warm-up, not judged"]
    ts = [s[0] for s in kept]
    rss_bad, rss_line = rss_rule(name, ts, [s[1] for s in kept], churned, duration)
    fd_bad, fd_line = fd_rule(name, ts, [s[2] for s in kept])
    return [b for b in (rss_bad, fd_bad) if b], [rss_line, fd_line]


def selftest():
    """Checks the trend rules on made-up samples, over a 2-minute and a
    10-minute window: noise, a spike and a step pass; the leak issue 13
    measured (145 B per connection at 100 connections a second) and a
    leaked fd every 10 s fail; fds swinging by 8 with the connections in
    flight pass.  Returns the exit status."""
    wobble = [0, 60, -40, 110, 20, -90, 70, -10, 130, -60, 40, 90, -30]
    cases = [("noise", False, lambda i, t: 10000 + wobble[i % 13], lambda i, t: 40 + i % 5),
             ("spike", False, lambda i, t: 10000 + 3072 * (i == 4), lambda i, t: 40 + i * 7 % 9),
             ("step", False, lambda i, t: 10000 + 1536 * (i >= 3), lambda i, t: 40),
             ("leak", True, lambda i, t: 10000 + int(t * 14.2) + wobble[i % 13],
              lambda i, t: 40),
             ("fd-leak", True, lambda i, t: 10000, lambda i, t: 40 + i)]
    failed = 0
    for duration, warmup in ((120, 30), (600, 60)):
        ts = list(range(warmup, duration, SAMPLE_EVERY))
        for name, want, rss, fds in cases:
            got, _ = judge(name, [(t, rss(i, t), fds(i, t)) for i, t in enumerate(ts)],
                           warmup, 100 * duration, duration)
            ok = bool(got) == want
            failed += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {duration} s {name}: "
                  f"{'; '.join(got) or 'no rise'} (want {'a' if want else 'no'} failure)")
    print(f"{2 * len(cases) - failed} passed, {failed} failed")
    return 1 if failed else 0


# ---------------------------------------------------------------- the run

def schedule(duration, without=()):
    """Returns the run's events [(t, kind)], in time order: samples every
    SAMPLE_EVERY s, partitions and rebinds every PERIOD s (unless |without|
    names them), none so close to the end that the load is over before they
    are checked."""
    ev = [(t, "sample") for t in range(0, duration, SAMPLE_EVERY)]
    for start in range(PARTITION_AT, duration - PARTITION_LEN - 10 + 1, PERIOD):
        if "partitions" not in without:
            ev += [(start, "partition"), (start + PARTITION_LEN, "heal")]
    for t in range(REBIND_AT, duration - 10 + 1, PERIOD):
        if "rebinds" not in without:
            ev += [(t, "rebind"), (t + 5, "moved"), (t + 9, "settled")]
    order = {"heal": 0, "settled": 1, "moved": 2, "sample": 3, "partition": 4, "rebind": 5}
    return sorted(ev, key=lambda e: (e[0], order[e[1]]))


class Timeline:
    """Carries out the schedule while the client runs, and keeps the
    samples and the measured numbers."""

    def __init__(self, s, srv, cli):
        self.s, self.srv, self.cli = s, srv, cli
        self.samples = {"server": [], "client": []}
        self.churn_at = []  # (t, churned connections the client reported) per sample
        self.notes = []
        self.problems = []  # failures that do not stop the run
        self.at_rebind = None  # the to-nat counters when the last rebind happened
        self.at_moved = None

    def say(self, t, text):
        """Prints one event line."""
        print(f"  t={t:4d}s {text}", flush=True)

    def problem(self, t, text):
        """Records a failure that lets the run go on (the load shows what
        follows from it), and prints it."""
        self.problems.append(text)
        self.say(t, f"PROBLEM: {text}")

    def take_sample(self, t):
        """Samples both processes and prints the line."""
        line = []
        for name, p in (("server", self.srv), ("client", self.cli)):
            rss, fds = sample(p.pid)
            self.samples[name].append((t, rss, fds))
            line.append(f"{name} rss={rss} KiB fds={fds}")
        progress = (self.cli.lines("progress") or ["progress (none yet)"])[-1]
        m = re.search(r"churn=(\d+)", progress)
        self.churn_at.append((t, int(m.group(1)) if m else 0))
        self.say(t, f"sample {'  '.join(line)}  [{progress[9:]}]")

    def cut_at_stall(self):
        """For a run that ended early: drops the samples taken after the
        churn last moved at a quarter of its best pace or more (a stalled
        process's flat memory says nothing) and returns (churned
        connections, seconds) up to there."""
        steps = [self.churn_at[i][1] - self.churn_at[i - 1][1]
                 for i in range(1, len(self.churn_at))]
        moving = max(steps or [0]) / 4  # a few connections trickling is a stall
        last = max([i + 1 for i, n in enumerate(steps) if n > moving] or [0])
        t, churned = self.churn_at[last]
        for name in self.samples:
            self.samples[name] = self.samples[name][:last + 1]
        if last + 1 < len(self.churn_at):
            print(f"  the churn stopped after t={t} s: the trend is taken up to there",
                  flush=True)
        return churned, max(t, 1)

    def do(self, t, kind):
        """Carries out one event of the schedule."""
        if kind == "sample":
            self.take_sample(t)
        elif kind == "partition":
            self.s.partition(True)
            self.say(t, f"partition: the router drops all UDP for {PARTITION_LEN} s")
        elif kind == "heal":
            n = self.s.partition(False)
            self.say(t, f"partition healed ({n} packets dropped)")
            if n == 0:
                self.problem(t, f"the partition at t={t - PARTITION_LEN} s dropped nothing")
        else:
            self.rebind_event(t, kind)

    def rebind_event(self, t, kind):
        """A rebind, and its two checks: 5 s later the server sends to the
        new public address; from then to 9 s, no longer to the old one."""
        new, old = self.s.nat, 1 - self.s.nat
        if kind == "rebind":
            self.s.rebind()
            self.at_rebind = self.s.to_nat()
            self.say(t, f"rebind: the client's public address is now {NAT[self.s.nat]} "
                        "(new port; conntrack entry deleted)")
            return
        now = self.s.to_nat()
        if kind == "moved":
            self.at_moved = now
            sent = now[new] - self.at_rebind[new]
            self.say(t, f"  server -> new address: {sent} packets, -> old: "
                        f"{now[old] - self.at_rebind[old]} packets since the rebind")
            if sent == 0:
                self.problem(t, f"5 s after the rebind at t={t - 5} s the server has sent "
                                f"nothing to the client's new address {NAT[new]}")
        else:
            late = now[old] - self.at_moved[old]
            self.say(t, f"  server -> old address from t={t - 4} s to t={t} s: {late} "
                        "packets")
            if late:
                self.problem(t, f"after the rebind at t={t - 9} s the server still sends "
                                f"to the old address ({late} packets 5-9 s later)")

    def run(self, start):
        """Runs the schedule from the monotonic time |start| (the client's
        start); raises Failure when the client or server ends early."""
        for t, kind in schedule(self.s.duration, self.s.args.without):
            while time.monotonic() < start + t:
                for p in (self.cli, self.srv):
                    if p.popen.poll() is not None:
                        raise Failure(f"{p.name} ended at t={time.monotonic() - start:.0f} s",
                                      p.evidence())
                time.sleep(min(0.2, max(start + t - time.monotonic(), 0)))
            self.do(t, kind)


def wait_exec(p):
    """Waits until the pid of |p| (ip netns exec, then env, then the tool,
    each exec'ing the next) runs the tool, whose RSS and fds are sampled."""
    end = time.monotonic() + 5
    comm = "?"
    while time.monotonic() < end and p.popen.poll() is None:
        with open(f"/proc/{p.pid}/comm") as f:
            comm = f.read().strip()
        if comm.startswith("rudp-e2e"):
            return
        time.sleep(0.01)
    raise Failure(f"pid {p.pid} of {p.name} runs {comm!r}, not the tool", p.evidence())


def log_counts(s, name):
    """Returns (sessions opened, sessions closed, streams that ended
    abnormally) from a process's RUDP_LOG file."""
    opened = closed = ended = 0
    try:
        with open(os.path.join(s.dir, name + ".rudp"), errors="replace") as f:
            for line in f:
                opened += "new session on port" in line
                closed += "session closed:" in line
                ended += bool(re.search(r"stream \d+ ended", line))
    except OSError:
        pass
    return opened, closed, ended


def finish(s, tl, srv, cli):
    """After the load: the client's verdict, the server alone, the logs,
    the link, the TCP counters.  Raises Failure on the first problem."""
    cli.wait_ok(120, "ok ")
    result = cli.lines("ok ")[-1]
    print(f"  client: {result}", flush=True)
    time.sleep(5)
    rss, fds = sample(srv.pid)
    tl.notes.append(f"server 5 s after the client left: rss={rss} KiB fds={fds}")
    if srv.popen.poll() is not None:
        raise Failure("the server died", srv.evidence())
    opened, closed, ended = log_counts(s, "server")
    tl.notes.append(f"server log: {opened} session(s) opened, {closed} closed, "
                    f"{ended} stream(s) ended abnormally")
    if opened != 1 or ended:
        raise Failure(f"the server's log shows {opened} sessions and {ended} streams "
                      "that ended abnormally: want one session for the whole run, "
                      "through every partition and rebind, and none",
                      [l for l in open(os.path.join(s.dir, "server.rudp"),
                                       errors="replace") if "session" in l][:6])
    dropped = s.tcp_dropped()
    if dropped:
        raise Failure(f"{dropped} TCP packets on port {PORT} were dropped: something fell "
                      "back to TCP")
    return int(re.search(r"churn=(\d+)", result).group(1))


def link_stats(netem):
    """Stops rudp-netem and returns its statistics lines."""
    netem.stop(signal.SIGTERM)
    return [l for l in netem.err().splitlines() if l.startswith("rudp-netem: stats")]


def trend(tl, churned, seconds):
    """Prints the trend of both processes' samples; returns the failures."""
    warmup = min(60, tl.s.duration // 4)
    print(f"  trend (Theil-Sen over t >= {warmup} s, projected over {HORIZON} s):",
          flush=True)
    bad = []
    for name in ("server", "client"):
        why, lines = judge(name, tl.samples[name], warmup, churned, seconds)
        bad += why
        for line in lines:
            print(f"    {line}", flush=True)
    return bad


def soak(s):
    """The whole run; raises Failure.  Returns the report lines."""
    s.setup()
    netem = s.start_link()
    a = s.args
    tool = [a.tool, "--timeout", str(a.duration + 200)]
    srv = s.spawn("s", "server", tool + ["echo-server", PORT, "--mode", "epoll"], shim=True)
    srv.wait_line("listening", 10)
    cli = s.spawn("c", "client", tool + ["soak-client", SRV, PORT, a.duration, "--churn",
                                         a.churn, "--bulk", a.bulk, "--idle", 8], shim=True)
    start = time.monotonic()
    for p in (srv, cli):
        wait_exec(p)
    tl = Timeline(s, srv, cli)
    try:
        tl.run(start)
        churned = finish(s, tl, srv, cli)
    except Failure as f:
        # Ended early: what the samples so far say, and the link.
        rising = trend(tl, *tl.cut_at_stall())
        raise Failure("; ".join(tl.problems + [str(f)] + rising),
                      f.details + tl.notes + link_stats(netem)) from f
    tl.notes += link_stats(netem)
    bad = tl.problems + trend(tl, churned, a.duration)
    if bad:
        raise Failure("; ".join(bad), tl.notes)
    return tl.notes


# ----------------------------------------------------------------- main

def preflight(args):
    """Returns None when the machine can run the suite, else (code,
    message): skip (77) or fail."""
    if os.geteuid() != 0:
        return SKIP, "SKIP soak: needs root (network namespaces, iptables)"
    missing = [c for c in ("ip", "iptables", "sysctl", "conntrack")
               if shutil.which(c) is None]
    if missing:
        return 1, f"FAIL soak: missing programs: {' '.join(missing)} (scripts/setup)"
    if not os.path.isfile(args.netem_bin) or not os.access(args.netem_bin, os.X_OK):
        return SKIP, ("SKIP soak: rudp-netem is not built (install libnetfilter-queue-dev "
                      "and reconfigure)")
    for path, what in ((args.shim, "--shim"), (args.tool, "--tool")):
        if not os.path.isfile(path):
            return 1, f"FAIL soak: {what} {path}: no such file"
    probe = f"rudp-soak-{os.getpid()}-probe"
    rc, out = quiet(["ip", "netns", "add", probe])
    if rc != 0:
        return SKIP, f"SKIP soak: cannot make a network namespace: {out.strip()}"
    quiet(["ip", "netns", "del", probe])
    return None


def parse_args(argv):
    """Parses the command line."""
    ap = argparse.ArgumentParser(description="rudp soak suite (needs root)")
    ap.add_argument("--shim", default=os.path.join(REPO, "build/shim/librudp_shim.so"))
    ap.add_argument("--tool", default=os.path.join(REPO, "build/tests/e2e/rudp-e2e-tool"))
    ap.add_argument("--netem-bin", default=os.path.join(REPO, "build/tests/netem/rudp-netem"))
    ap.add_argument("--duration", type=int, default=600, help="seconds of load (>= 90)")
    ap.add_argument("--churn", type=int, default=8, help="churn threads of the client")
    ap.add_argument("--bulk", type=int, default=1, help="bulk threads of the client")
    ap.add_argument("--without", action="append", default=[], choices=("partitions", "rebinds"),
                    help="leave out these events (to tell apart what fails)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--selftest-trend", action="store_true",
                    help="check the trend rules on made-up samples (no root) and exit")
    args = ap.parse_args(argv)
    if args.duration < 90:
        ap.error("--duration must be at least 90 s (the trend needs samples)")
    for k in ("shim", "tool", "netem_bin"):
        setattr(args, k, os.path.abspath(getattr(args, k)))
    return args


def main(argv):
    """Runs the soak and prints the verdict; returns the exit status."""
    args = parse_args(argv)
    if args.selftest_trend:
        return selftest()
    pre = preflight(args)
    if pre is not None:
        print(pre[1])
        return pre[0]
    atexit.register(cleanup_all)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    s = Soak(args)
    began = time.monotonic()
    print(f"soak: {args.duration} s, port {PORT}, link {' '.join(LINK)} (rudp-netem), "
          f"{args.churn} churn threads, {args.bulk} bulk (4 MiB), 8 idle connections"
          + "".join(f", without {w}" for w in args.without), flush=True)
    ok = False
    try:
        notes = soak(s)
        ok = True
        print(f"PASS soak ({time.monotonic() - began:.0f} s)")
    except Failure as f:
        notes = f.details
        print(f"FAIL soak: {f} ({time.monotonic() - began:.0f} s)")
    except Interrupted as e:
        notes = []
        print(f"FAIL soak: interrupted ({e}); cleaning up")
    except Exception as e:  # a bug in the harness: report it, clean up
        notes = traceback.format_exc().splitlines()[-6:]
        print(f"FAIL soak: harness error {e!r}")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not stop the cleanup
        s.teardown()
        cleanup_all()
    for n in notes:
        print(f"    {n}")
    print(f"{int(ok)} passed, {int(not ok)} failed", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
