#!/usr/bin/env python3
"""run.py — the attack suite: an attacker on the network against our wire.

docs/SECURITY.md lists what protocol version 3 promises against an off-path
spoofer, a passive observer, an active attacker and a flooder; every test
here plays one of them against real programs under the shim and asserts the
promise from the outside: what the programs print, what the iptables
counters measured, what a packet capture contains.

* Every test builds its own LAN of three network namespaces
  (rudp-atk-<pid>-<n>-{s,c,a}): the server's holds a bridge br0 with
  10.77.0.1/24, and a veth pair joins each of the client (10.77.0.3) and
  the attacker (10.77.0.2) to it, as hosts on one Ethernet segment.  The
  attacker sends raw IPv4/UDP with any source (an IP_HDRINCL socket,
  agent.py): the client's or the server's address to impersonate them,
  and addresses of 10.77.9.0/24, routed by the server through the
  attacker as if they were hosts behind it, for floods (the server's
  replies to them go to the attacker's interface and die there, and are
  counted).  Reverse-path filtering is off everywhere, IPv6 is off.
* As in tests/e2e/run.py, iptables in the server's and the client's
  namespaces drop TCP on the test's ports, so a connection that fell back
  to TCP fails; the suite checks at the end that no TCP packet was
  dropped.  Counting rules (no target, a comment naming them) measure
  bytes to and from the attacker and the spoofed range.
* Captures come from an AF_PACKET tap on the server's end of the client's
  veth (agent.py sniff): both directions of the client's traffic, and
  what the attacker sends to the client.
* Processes run as `ip netns exec NS env LD_PRELOAD=... RUDP_PORTS=...`;
  every wait is bounded; processes and namespaces are cleaned up in
  try/finally, atexit and signal handlers; each test's RUDP_STATE_DIR is
  its own.

Output: "PASS name (1.2s)" or "FAIL name: reason" with indented evidence,
the measured numbers as "    measured: ..." lines, and "N passed, N failed".
Exit status 0, 1 when a test failed, 77 when not root or namespaces cannot
be made.

    run.py --shim build/shim/librudp_shim.so --tool build/tests/e2e/rudp-e2e-tool
           --attack-tool build/tests/attack/rudp-attack-tool
           [--only NAME...] [--list] [--log LEVEL] [--keep] [--verbose]
"""

import argparse
import atexit
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
from nstest import (LIVE_NAMESPACES, Failure, Interrupted, Proc, cleanup_all, must,
                    ns_delete, on_signal, quiet)  # noqa: E402
AGENT = os.path.join(HERE, "agent.py")
KIB, MIB = 1 << 10, 1 << 20
BASE_PORT = 7700

SRV, ATK, CLI = "10.77.0.1", "10.77.0.2", "10.77.0.3"
SPOOF_NET = "10.77.9.0/24"

# Packet types (docs/PROTOCOL.md "Packets").
INITIAL, HANDSHAKE, PROTECTED, RETRY, REFUSE, RESET = range(6)
VERSION = 3  # docs/PROTOCOL.md "Packets": the version byte


# --------------------------------------------------------------- captures

Dgram = namedtuple("Dgram", "src sport dst dport proto payload")


def ipv4_segment(frame):
    """Returns the Dgram of an Ethernet frame holding IPv4 UDP or TCP, or
    None."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl, proto = (ip[0] & 15) * 4, ip[9]
    total = struct.unpack_from("!H", ip, 2)[0]
    if total == 0 or total > len(ip):  # a TSO super-frame: take all of it
        total = len(ip)
    body = ip[ihl:total]
    src, dst = socket.inet_ntoa(ip[12:16]), socket.inet_ntoa(ip[16:20])
    if proto == 17 and len(body) >= 8:
        payload = body[8:]
    elif proto == 6 and len(body) >= 20:
        payload = body[(body[12] >> 4) * 4:]
    else:
        return None
    sport, dport = struct.unpack_from("!HH", body, 0)
    return Dgram(src, sport, dst, dport, "udp" if proto == 17 else "tcp", payload)


def read_capture(path):
    """Returns the UDP and TCP segments of an agent.py capture file."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + 5 <= len(data):
        n = struct.unpack_from(">I", data, off + 1)[0]
        if off + 5 + n > len(data):
            break  # the record being written
        d = ipv4_segment(data[off + 5:off + 5 + n])
        if d:
            out.append(d)
        off += 5 + n
    return out


def rudp_type(d):
    """Returns the rudp packet type of a datagram, or -1."""
    p = d.payload
    return p[1] if d.proto == "udp" and len(p) >= 10 and p[0] == VERSION else -1


def dcid(d):
    """Returns the destination connection ID of an rudp datagram."""
    return d.payload[2:10]


def pkt_number(d):
    """Returns the packet number of a sealed rudp datagram."""
    return struct.unpack_from("!Q", d.payload, 10)[0]


def token_len(d):
    """Returns the token length of an INITIAL."""
    return struct.unpack_from("!H", d.payload, 51)[0]


def flow(cap, src, dst, port, kind=None):
    """Returns the UDP datagrams of |cap| from |src| to |dst| with |port|
    as either port, of rudp type |kind| when given."""
    return [d for d in cap if d.proto == "udp" and d.src == src and d.dst == dst and
            port in (d.sport, d.dport) and (kind is None or rudp_type(d) == kind)]


def read_records(path):
    """Returns the datagrams of a record file (u16 length, datagram)."""
    with open(path, "rb") as f:
        data = f.read()
    out, i = [], 0
    while i + 2 <= len(data):
        n = struct.unpack("!H", data[i:i + 2])[0]
        out.append(data[i + 2:i + 2 + n])
        i += 2 + n
    return out


def write_records(path, payloads):
    """Writes datagrams as rudp-attack-tool records (u16 length first)."""
    with open(path, "wb") as f:
        for p in payloads:
            f.write(struct.pack(">H", len(p)) + p)


# ------------------------------------------------------------------- tests

class Test:
    """The context of one test: its three namespaces on one LAN (with the
    TCP-drop rules), a scratch directory, its ports and its deadline."""

    serial = 0

    def __init__(self, runner, name, limit, nports):
        Test.serial += 1
        self.runner = runner
        self.name = name
        self.ports = [BASE_PORT + 10 * Test.serial + i for i in range(nports)]
        self.port = self.ports[0]
        self.deadline = time.monotonic() + limit
        base = f"rudp-atk-{os.getpid()}-{Test.serial}"
        self.ns = {role: f"{base}-{role}" for role in "sca"}
        self.dir = os.path.join(runner.tmp, name)
        self.procs = []
        self.notes = []
        os.makedirs(self.dir, exist_ok=True)

    def remaining(self):
        """Returns the seconds left before this test's deadline (>= 0)."""
        return max(self.deadline - time.monotonic(), 0.0)

    def note(self, text):
        """Records a measured number for the report."""
        self.notes.append(text)

    def run(self, role, *cmd):
        """Runs a harness command inside the namespace of |role|."""
        return must(["ip", "netns", "exec", self.ns[role]] + [str(c) for c in cmd])

    def setup(self):
        """Makes the namespaces and the LAN and drops TCP on the ports."""
        for role, ns in self.ns.items():
            must(["ip", "netns", "add", ns])
            LIVE_NAMESPACES.add(ns)
            must(["ip", "-n", ns, "link", "set", "lo", "up"])
            self.sysctls(role)
        s = self.ns["s"]
        must(["ip", "-n", s, "link", "add", "br0", "type", "bridge", "forward_delay", "0"])
        must(["ip", "-n", s, "addr", "add", f"{SRV}/24", "dev", "br0"])
        must(["ip", "-n", s, "link", "set", "br0", "up"])
        for role, addr, port in (("c", CLI, "p-cli"), ("a", ATK, "p-atk")):
            must(["ip", "-n", s, "link", "add", port, "type", "veth", "peer", "name", "eth0",
                  "netns", self.ns[role]])
            must(["ip", "-n", s, "link", "set", port, "master", "br0", "up"])
            must(["ip", "-n", self.ns[role], "addr", "add", f"{addr}/24", "dev", "eth0"])
            must(["ip", "-n", self.ns[role], "link", "set", "eth0", "up"])
        must(["ip", "-n", s, "route", "add", SPOOF_NET, "via", ATK])
        for role in "sca":
            self.sysctls(role)
        for role in "sc":
            self.block_tcp(role)

    def sysctls(self, role):
        """Turns reverse-path filtering and IPv6 off in |role|'s namespace
        (on every interface it has so far); bridged frames skip iptables."""
        ns = self.ns[role]
        rc, out = quiet(["ip", "-n", ns, "-o", "link", "show"])
        ifaces = ["all", "default"] + [l.split(":")[1].strip().split("@")[0]
                                       for l in out.splitlines() if ":" in l]
        words = [f"net.ipv4.conf.{i}.rp_filter=0" for i in ifaces]
        words += ["net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"]
        must(["ip", "netns", "exec", ns, "sysctl", "-q", "-w"] + words)
        quiet(["ip", "netns", "exec", ns, "sysctl", "-q", "-w",
               "net.bridge.bridge-nf-call-iptables=0"])

    def block_tcp(self, role):
        """Drops TCP to and from every port of the test in |role|'s
        namespace (iptables; IPv6 is off)."""
        for port in self.ports:
            for chain, flag in (("INPUT", "--dport"), ("INPUT", "--sport"),
                                ("OUTPUT", "--dport"), ("OUTPUT", "--sport")):
                self.run(role, "iptables", "-w", "5", "-A", chain, "-p", "tcp", flag, port,
                         "-j", "DROP")

    def tcp_dropped(self):
        """Returns the number of TCP packets the DROP rules caught."""
        n = 0
        for role in "sc":
            out = self.run(role, "iptables", "-w", "5", "-L", "-v", "-x", "-n")
            for line in out.splitlines():
                f = line.split()
                if f and f[0].isdigit() and "DROP" in f and "tcp" in f:
                    n += int(f[0])
        return n

    def count(self, role, chain, name, *match):
        """Adds a counting rule (no target) named |name| in |chain|."""
        self.run(role, "iptables", "-w", "5", "-I", chain, "1", *match, "-m", "comment",
                 "--comment", name)

    def counter(self, role, chain, name):
        """Returns (packets, bytes) of the counting rule |name|."""
        out = self.run(role, "iptables", "-w", "5", "-L", chain, "-v", "-x", "-n")
        for line in out.splitlines():
            if f"/* {name} */" in line:
                f = line.split()
                return int(f[0]), int(f[1])
        raise Failure(f"no counting rule {name} in {chain}")

    def teardown(self):
        """Kills this test's processes and deletes its namespaces."""
        for p in self.procs:
            p.stop()
        for ns in self.ns.values():
            ns_delete(ns)

    def state_dir(self, role):
        """Returns |role|'s RUDP_STATE_DIR (its secret), made 0700."""
        path = os.path.join(self.dir, f"state-{role}")
        os.makedirs(path, mode=0o700, exist_ok=True)
        return path

    def spawn(self, role, name, argv, shim=False, env=None):
        """Starts |argv| in |role|'s namespace, under the shim (RUDP_PORTS:
        the test's ports) when |shim|, with the variables |env|."""
        words = []
        if shim:
            words += [f"LD_PRELOAD={self.runner.shim}",
                      f"RUDP_PORTS={','.join(str(p) for p in self.ports)}",
                      f"RUDP_STATE_DIR={self.state_dir(role)}"]
            if self.runner.log is not None:
                words.append(f"RUDP_LOG={self.runner.log}")
        words += [f"{k}={v}" for k, v in (env or {}).items()]
        p = Proc(self, self.ns[role], name, [str(a) for a in argv], words)
        self.procs.append(p)
        return p

    def agent(self, *args):
        """Returns the argv of agent.py with its alarm set to the time left."""
        return [sys.executable, AGENT, "--timeout", str(int(max(self.remaining(), 1)) + 1)] + \
            [str(a) for a in args]

    def tool(self, *args):
        """Returns the argv of rudp-e2e-tool with its alarm set."""
        return [self.runner.tool, "--timeout", str(int(max(self.remaining(), 1)) + 1)] + \
            [str(a) for a in args]

    def server(self, *ports, env=None, name="server"):
        """Starts agent.py's logging echo server under the shim on |ports|
        (the test's first port by default) and waits until it listens."""
        srv = self.spawn("s", name, self.agent("server", *(ports or [self.port])), shim=True,
                         env=env)
        srv.wait_line("listening", 10)
        return srv

    def sniff(self, name="capture", iface="p-cli"):
        """Starts a tap on a port of the bridge (the client's unless
        |iface|); returns (Proc, capture path) once it is bound."""
        path = os.path.join(self.dir, f"{name}.cap")
        p = self.spawn("s", f"sniff-{name}", self.agent("sniff", iface, path))
        p.wait_line("ready", 10)
        return p, path

    def initials(self, n, retransmit=0, stream=False, name="initials", ticket=None):
        """Makes |n| genuine INITIALs (each with |retransmit| retransmissions;
        opening a stream when |stream|; resuming with the ticket file
        |ticket| when given) toward the server; returns the record file's
        path."""
        path = os.path.join(self.dir, f"{name}.bin")
        cmd = [self.runner.attack_tool, "initials", str(n), path, SRV, str(self.port)]
        if retransmit:
            cmd += ["--retransmit", str(retransmit)]
        if stream:
            cmd += ["--stream"]
        if ticket:
            cmd += ["--ticket", ticket]
        out = must(cmd, timeout=60)
        if not out.startswith(f"ok {n} "):
            raise Failure(f"rudp-attack-tool: {out.strip()!r}")
        return path

    def inject(self, items, name="inject"):
        """Sends |items| (agent.py inject's spec) from the attacker and waits
        until all went out."""
        spec = os.path.join(self.dir, f"{name}.json")
        with open(spec, "w") as f:
            json.dump(items, f)
        p = self.spawn("a", name, self.agent("inject", spec))
        p.wait_ok(60, f"sent {len(items)} ")

    def flood(self, records, seconds, port=None, group=1, name="flood"):
        """Starts a flood of the records from spoofed sources (the attacker's
        agent) and returns its Proc."""
        return self.spawn("a", name, self.agent("flood", records, SRV, port or self.port,
                                                SPOOF_NET, seconds, "--group", group))

    def expect(self, cond, reason, *procs, details=()):
        """Raises Failure with |reason| and the evidence of |procs| unless
        |cond|."""
        if not cond:
            ev = list(details)
            for p in procs:
                ev += p.evidence()
            raise Failure(reason, ev)


def accepts(srv, port=None):
    """Returns the (port, host) of every connection agent.py's server
    accepted (on |port| only, when given)."""
    out = []
    for line in srv.lines("accept "):
        f = line.split()
        if port is None or int(f[1]) == port:
            out.append((int(f[1]), f[2]))
    return out


def vm_kib(pid, field):
    """Returns a VmRSS/VmHWM value of process |pid| in KiB (0 when gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rand_cid():
    """Returns a random non-zero 8-byte connection ID."""
    return os.urandom(8)


def pkt(kind, cid, body):
    """Returns an rudp datagram: version, type, connection ID, |body|."""
    return bytes([VERSION, kind]) + cid + body


def datagram(src, sport, dst, dport, payload, gap=0.002):
    """Returns one agent.py inject item."""
    return {"src": src, "sport": sport, "dst": dst, "dport": dport, "hex": payload.hex(),
            "gap": gap}


# ------------------------------------------------------------- the tests

TESTS = []


def test(name, limit=60, nports=1):
    """Registers a test function under |name| with a time limit in seconds
    and the number of ports it uses."""
    def register(fn):
        TESTS.append((name, limit, nports, fn))
        return fn
    return register


def amplification_samples(t, until):
    """Samples the spoofed range's counters every half second until
    |until| (monotonic); returns the list of (bytes in, bytes out)."""
    samples = []
    while True:
        _, bin_ = t.counter("s", "INPUT", "in-spoofed")
        _, bout = t.counter("s", "OUTPUT", "out-spoofed")
        samples.append((bin_, bout))
        if time.monotonic() >= until:
            return samples
        time.sleep(min(0.5, max(until - time.monotonic(), 0)))


def per_source(cap):
    """Returns {(address, port): [bytes in, bytes out]} at the IP level for
    the spoofed sources in a capture of the attacker's port, and the count
    of each rudp type the server sent them."""
    net = SPOOF_NET.split("0/")[0]
    flows, kinds = {}, {}
    for d in cap:
        if d.proto != "udp":
            continue
        if d.src.startswith(net):
            flows.setdefault((d.src, d.sport), [0, 0])[0] += len(d.payload) + 28
        elif d.dst.startswith(net):
            flows.setdefault((d.dst, d.dport), [0, 0])[1] += len(d.payload) + 28
            kinds[rudp_type(d)] = kinds.get(rudp_type(d), 0) + 1
    return flows, kinds


@test("spoofed-opening", limit=60)
def t_spoofed_opening(t):
    """Genuine INITIALs from spoofed sources open no connection, and the
    server sends no spoofed address more than 3x the bytes it received
    from it."""
    srv = t.server()
    sniffer, cap_path = t.sniff(iface="p-atk")
    t.count("s", "INPUT", "in-spoofed", "-s", SPOOF_NET, "-p", "udp", "--dport", t.port)
    t.count("s", "OUTPUT", "out-spoofed", "-d", SPOOF_NET, "-p", "udp", "--sport", t.port)
    # Wave 0: 100 INITIALs that also open a stream with data (a client
    # without a key may not).  Wave 1: 200 sessions, with two
    # retransmissions each, so the server sees every SYN three times.
    # Wave 2: 2,000 more, past the 256 unvalidated sessions (RETRY).
    wave0 = t.initials(100, retransmit=1, stream=True, name="wave0")
    wave1, wave2 = t.initials(200, retransmit=2, name="wave1"), t.initials(2000, name="wave2")
    start = time.monotonic()
    t.flood(wave0, 0.5, group=2, name="flood0").wait_ok(20, "sent 200 ")
    t.flood(wave1, 1.0, group=3, name="flood1").wait_ok(20, "sent 600 ")
    t.flood(wave2, 2.0, name="flood2").wait_ok(20, "sent 2000 ")
    # Until every session made has timed out (15 s) and can send no more.
    samples = amplification_samples(t, start + 19.0)
    sniffer.stop(signal.SIGTERM)
    bin_, bout = samples[-1]
    worst = max(o / i for i, o in samples if i)
    flows, kinds = per_source(read_capture(cap_path))
    (addr, port), (fin, fout) = max(flows.items(), key=lambda kv: kv[1][1] / max(kv[1][0], 1))
    t.note(f"spoofed range: {bin_} bytes in, {bout} bytes out, ratio {bout / max(bin_, 1):.3f}"
           f" (worst sample {worst:.3f}); replies by type {kinds}; worst source "
           f"{addr}:{port}: {fin} in, {fout} out ({fout / max(fin, 1):.2f}x)")
    t.expect(bin_ >= 2800 * 1200, f"only {bin_} bytes reached the server from the spoofed "
             "range: the flood did not arrive", srv)
    t.expect(kinds.get(HANDSHAKE, 0) >= 200, f"{kinds.get(HANDSHAKE, 0)} HANDSHAKEs for 200 "
             "sessions: the INITIALs made no sessions (not genuine?)", srv)
    t.expect(worst <= 3.0, f"amplification: the server sent {bout} bytes to spoofed "
             f"addresses for {bin_} received (worst sample {worst:.2f}x > 3x)", srv)
    t.expect(fout <= 3 * fin, f"amplification: {addr}:{port} was sent {fout} bytes for {fin} "
             f"received ({fout / max(fin, 1):.2f}x > 3x)", srv)
    t.expect(not accepts(srv), f"the server program accepted {len(accepts(srv))} connections "
             "from spoofed addresses", srv, details=srv.lines("accept")[:5])
    # Control: a real client is accepted (the log works, the server lives).
    cli = t.spawn("c", "client", t.tool("threads-client", SRV, t.port, 2, 64 * KIB), shim=True)
    cli.wait_ok(30, "ok 2")
    got = accepts(srv)
    t.expect(got == [(t.port, CLI)] * 2, f"control: accepted {got}, want two from {CLI}", srv)


def learn_session(cap, port):
    """Returns (server CID, client CID, client port) from the protected
    datagrams of a capture of one session."""
    c2s = flow(cap, CLI, SRV, port, PROTECTED)
    s2c = flow(cap, SRV, CLI, port, PROTECTED)
    if not c2s or not s2c:
        raise Failure(f"capture: {len(c2s)} client->server and {len(s2c)} server->client "
                      "PROTECTED datagrams, want some of each")
    return dcid(c2s[0]), dcid(s2c[0]), c2s[0].sport


def forgeries(t, scid, ccid, cport, initial):
    """Returns the forged datagrams of forged-packets, shuffled: what an
    attacker who knows both connection IDs and both addresses can send."""
    to_cli = (SRV, t.port, CLI, cport)
    to_srv = (CLI, cport, SRV, t.port)
    from_atk = (ATK, 40010, SRV, t.port)
    items = []
    add = lambda route, payload: items.append(datagram(*route, payload))
    for _ in range(20):  # stateless resets with guessed tokens, either CID
        add(to_cli, pkt(RESET, scid, os.urandom(16)))
        add(to_cli, pkt(RESET, ccid, os.urandom(16)))
    for _ in range(30):  # "GoAway", "RST", "PING": sealed garbage
        add(to_cli, pkt(PROTECTED, ccid, os.urandom(random.randint(30, 1400))))
        add(to_srv, pkt(PROTECTED, scid, os.urandom(random.randint(30, 1400))))
    for _ in range(10):
        add(from_atk, pkt(PROTECTED, scid, os.urandom(random.randint(30, 1400))))
        # The server answers these with stateless resets to the real client:
        # for an unknown CID, and for the client's own CID.
        add(to_srv, pkt(PROTECTED, rand_cid(), os.urandom(200)))
        add(to_srv, pkt(PROTECTED, ccid, os.urandom(200)))
    for _ in range(5):
        add(to_cli, pkt(HANDSHAKE, ccid, os.urandom(300)))
        add(to_cli, pkt(REFUSE, ccid, bytes([4, VERSION])))
        add(to_cli, pkt(REFUSE, scid, bytes([1, VERSION])))
        add(to_cli, pkt(RETRY, ccid, struct.pack("!H", 24) + os.urandom(24 + 16)))
    add(to_cli, initial)  # a client takes no INITIAL
    add(to_srv, initial)  # a second session for the client's own address
    random.shuffle(items)
    return items


def replays(t, cap, cport):
    """Returns every captured datagram of the session replayed: from the
    real source (duplicates) and, for sealed ones, from the attacker's own
    address (a migration without the keys)."""
    items = []
    for d in flow(cap, CLI, SRV, t.port):
        items.append(datagram(CLI, cport, SRV, t.port, d.payload, gap=0.001))
        if rudp_type(d) == PROTECTED:
            items.append(datagram(ATK, 40020, SRV, t.port, d.payload, gap=0.001))
    for d in flow(cap, SRV, CLI, t.port):
        items.append(datagram(SRV, t.port, CLI, cport, d.payload, gap=0.001))
        items.append(datagram(ATK, 40021, CLI, cport, d.payload, gap=0.001))
    return items


def held_back_replay(t, sniff_path, cli, cport):
    """The strongest replay: the client's newest datagrams are kept from
    the server (an iptables DROP stands in for an attacker on the path
    that holds them back) and the attacker sends the newest from its own
    address first, so that it is the newest the server has seen."""
    hold = ["-s", CLI, "-p", "udp", "--dport", str(t.port), "-j", "DROP"]
    before = len(flow(read_capture(sniff_path), CLI, SRV, t.port))
    t.run("s", "iptables", "-w", "5", "-I", "INPUT", "1", *hold)
    try:
        open(os.path.join(t.dir, "ctl", "trickle"), "w").close()
        end = time.monotonic() + 10
        while True:
            new = [d for d in flow(read_capture(sniff_path), CLI, SRV, t.port, PROTECTED)
                   [before:] if len(d.payload) >= 1000]
            if new or time.monotonic() > end:
                break
            time.sleep(0.02)
        t.expect(new, "the client sent no data while held back", cli)
        newest = max(flow(read_capture(sniff_path), CLI, SRV, t.port, PROTECTED), key=pkt_number)
        sent = t.counter("s", "OUTPUT", "to-attacker")[0]
        t.inject([datagram(ATK, 40030, SRV, t.port, newest.payload)], name="inject-held")
        # Until the server has answered it (its path challenge), or 5 s.
        wait_for(lambda: t.counter("s", "OUTPUT", "to-attacker")[0] > sent, 5)
    finally:
        t.run("s", "iptables", "-w", "5", "-D", "INPUT", *hold)
    cli.wait_line("trickle ok", 15)


@test("forged-packets", limit=60)
def t_forged_packets(t):
    """Forged resets, refusals, sealed garbage and replays (from the real
    sources and the attacker's) change nothing: the connection goes on
    byte-exact and no stream data goes to the attacker."""
    t.count("s", "OUTPUT", "to-attacker", "-d", ATK, "-p", "udp", "--sport", t.port)
    t.count("c", "OUTPUT", "cli-to-attacker", "-d", ATK, "-p", "udp")
    srv = t.server()
    sniffer, cap_path = t.sniff()
    initial = open(t.initials(1), "rb").read()[2:]
    os.makedirs(os.path.join(t.dir, "ctl"))
    cli = t.spawn("c", "client", t.agent("session-client", SRV, t.port,
                                         os.path.join(t.dir, "ctl")), shim=True)
    cli.wait_line("phase1 ok", 20)
    cap = read_capture(cap_path)
    scid, ccid, cport = learn_session(cap, t.port)
    t.inject(forgeries(t, scid, ccid, cport, initial), name="inject-forged")
    t.inject(replays(t, cap, cport), name="inject-replayed")
    held_back_replay(t, cap_path, cli, cport)
    probes, _ = t.counter("s", "OUTPUT", "to-attacker")
    open(os.path.join(t.dir, "ctl", "go"), "w").close()
    cli.wait_ok(40, "done")
    cap = read_capture(cap_path)
    resets = flow(cap, SRV, CLI, t.port, RESET)
    pkts, nbytes = t.counter("s", "OUTPUT", "to-attacker")
    cpkts, cbytes = t.counter("c", "OUTPUT", "cli-to-attacker")
    t.note(f"server->attacker: {pkts} datagrams, {nbytes} bytes ({probes} after the held-back "
           f"replay); client->attacker: {cpkts} datagrams, {cbytes} bytes; stateless resets "
           f"seen by the client: {len(resets)}")
    echo = cli.lines("echo ok")[0].split()
    t.expect(echo[2] == echo[3], "the 1 MiB echo after the attack differs", cli)
    t.expect(not cli.err().strip(), "the client reported errors on stderr", cli)
    t.expect(len(resets) >= 40, f"only {len(resets)} stateless resets crossed to the client: "
             "the forgeries did not arrive", cli)
    t.expect(probes >= 1, "the held-back replay from a new address drew no path challenge: "
             "it never reached the migration logic", srv)
    t.expect(nbytes < 1000 and pkts <= 5, f"the server sent the attacker {pkts} datagrams, "
             f"{nbytes} bytes (want a few path challenges, < 1 KB)", srv, cli)
    t.expect(cbytes < 1000, f"the client sent the attacker {cbytes} bytes", cli)
    got = accepts(srv)
    t.expect(got == [(t.port, CLI)] * 2, f"the server accepted {got}, want two from {CLI}",
             srv)
    t.expect(not srv.lines("error"), "the server program saw a connection error", srv)
    sniffer.stop(signal.SIGTERM)


def rss_watch(pid, proc, samples, until=None):
    """Samples VmRSS of |pid| into |samples| until |proc| exits (or the
    monotonic time |until|)."""
    while proc.popen.poll() is None and (until is None or time.monotonic() < until):
        samples.append(vm_kib(pid, "VmRSS"))
        time.sleep(0.05)


def flood_round(t, srv, port, n, seconds, label):
    """Floods |port| with |n| genuine INITIALs from spoofed sources over
    |seconds|; from half-way, 10 real connections echo, and 10 more after
    the flood.  Returns (baseline, peak in the flood's first half alone,
    peak) in KiB and the seconds the connections during the flood took."""
    records = t.initials(n, name=f"initials-{label}")
    warm = t.spawn("c", f"warm-{label}", t.tool("threads-client", SRV, port, 10, 256 * KIB),
                   shim=True)
    warm.wait_ok(30, "ok 10")
    time.sleep(0.5)
    base = vm_kib(srv.pid, "VmRSS")
    fl = t.flood(records, seconds, port=port, name=f"flood-{label}")
    alone = []
    rss_watch(srv.pid, fl, alone, time.monotonic() + seconds / 2)
    started = time.monotonic()
    during = t.spawn("c", f"during-{label}", t.tool("threads-client", SRV, port, 10, 256 * KIB),
                     shim=True)
    samples = list(alone)
    rss_watch(srv.pid, fl, samples)
    fl.wait_ok(10, f"sent {n} ")
    during.wait_ok(40, "ok 10")
    took = time.monotonic() - started
    after = t.spawn("c", f"after-{label}", t.tool("threads-client", SRV, port, 10, 256 * KIB),
                    shim=True)
    after.wait_ok(30, "ok 10")
    t.expect(srv.popen.poll() is None, f"the server died in the {label} flood", srv)
    return base, max(alone + [base]), max(samples + [vm_kib(srv.pid, "VmRSS")]), took


def session_log(srv):
    """Returns (sessions made, sessions closed) from a server's RUDP_LOG=2
    lines."""
    lines = srv.err().splitlines()
    return (sum(1 for l in lines if "new session on port" in l),
            sum(1 for l in lines if "session closed:" in l))


@test("spoofed-flood", limit=90, nports=2)
def t_spoofed_flood(t):
    """20,000 spoofed INITIALs in 3 s: real clients still connect and echo,
    every session the flood made is closed once the handshake timeout has
    passed and memory is back within 2 MB; with RUDP_RETRY=always memory
    barely moves."""
    sniffer, cap_path = t.sniff()
    srv = t.spawn("s", "server", t.tool("echo-server", t.port), shim=True,
                  env={"RUDP_LOG": "2"})
    srv.wait_line("listening", 10)
    base, alone, peak, took = flood_round(t, srv, t.port, 20000, 3.0, "auto")
    hwm = vm_kib(srv.pid, "VmHWM")
    # Until every session the flood made has closed (the handshake timeout,
    # 15 s), then until the engine's next tick has given the heap back.
    closed_all = lambda: session_log(srv)[0] == session_log(srv)[1]
    wait_for(closed_all, 20)
    wait_for(lambda: vm_kib(srv.pid, "VmRSS") - base <= 2 * 1024, 3)
    final = vm_kib(srv.pid, "VmRSS")
    made, closed = session_log(srv)
    retries1 = len(flow(read_capture(cap_path), SRV, CLI, t.port, RETRY))
    t.note(f"auto: RSS before {base} KiB, peak {peak} KiB ({alone} in the flood alone, "
           f"VmHWM {hwm}), once all closed {final} KiB; sessions made {made}, closed {closed}; 10 "
           f"connections during the flood took {took:.1f} s; RETRYs to the client: {retries1}")
    t.expect(made >= 256, f"the flood made only {made} sessions (the log works?)", srv)
    t.expect(closed == made, f"{made} sessions made, {closed} closed 20 s after the flood: "
             "unvalidated sessions outlive the handshake timeout", srv)
    t.expect(final - base <= 2 * 1024, f"RSS {final} KiB once the flood's sessions closed, "
             f"{base} KiB before: more than 2 MB kept", srv)
    # The same with RUDP_RETRY=always: no state for any INITIAL.
    srv2 = t.spawn("s", "server-retry", t.tool("echo-server", t.ports[1]), shim=True,
                   env={"RUDP_RETRY": "always", "RUDP_LOG": "2"})
    srv2.wait_line("listening", 10)
    base2, alone2, peak2, took2 = flood_round(t, srv2, t.ports[1], 6000, 2.0, "always")
    time.sleep(1.0)
    final2 = vm_kib(srv2.pid, "VmRSS")
    made2, _ = session_log(srv2)
    cap = read_capture(cap_path)
    retries = flow(cap, SRV, CLI, t.ports[1], RETRY)
    tokens = [d for d in flow(cap, CLI, SRV, t.ports[1], INITIAL) if token_len(d) > 0]
    t.note(f"always: RSS before {base2} KiB, peak {peak2} KiB ({alone2} in the flood alone), "
           f"after {final2} KiB; sessions made {made2}; 10 connections during the flood took "
           f"{took2:.1f} s; RETRYs to the client: {len(retries)}, INITIALs with a token: "
           f"{len(tokens)}")
    t.expect(made2 == 3, f"RUDP_RETRY=always: {made2} sessions made, want 3 (the clients')",
             srv2)
    t.expect(alone2 - base2 <= 1024, f"RUDP_RETRY=always: RSS grew from {base2} to {alone2} "
             "KiB in the flood (stateless retry keeps nothing)", srv2)
    t.expect(len(retries) >= 3 and len(tokens) >= 3, f"RUDP_RETRY=always: {len(retries)} "
             f"RETRYs and {len(tokens)} INITIALs with a token seen for 3 client processes",
             srv2)
    sniffer.stop(signal.SIGTERM)


@test("capture-has-no-plaintext", limit=60)
def t_capture(t):
    """A 1 MiB marker echoed through the shim appears in no captured
    datagram, nor in the INITIALs opened with the public key; the same
    through plain TCP does appear (the capture works)."""
    marker = "RUDP-MARKER-" + os.urandom(8).hex()
    plain = t.port + 5  # not one of the test's ports: plain TCP, not dropped
    srv = t.server(t.port, plain)
    sniffer, cap_path = t.sniff()
    cli = t.spawn("c", "client", t.agent("marker-client", SRV, t.port, marker, MIB), shim=True,
                  env={"RUDP_FASTOPEN": "1"})
    cli.wait_ok(40, f"ok {MIB}")
    ctl = t.spawn("c", "control", t.agent("marker-client", SRV, plain, marker, 64 * KIB),
                  shim=False)
    ctl.wait_ok(20, f"ok {64 * KIB}")
    time.sleep(0.2)
    sniffer.stop(signal.SIGTERM)
    cap = read_capture(cap_path)
    up, down = flow(cap, CLI, SRV, t.port), flow(cap, SRV, CLI, t.port)
    m = marker.encode()
    leaks = [d for d in up + down if m in d.payload or m[12:] in d.payload]
    stream = b"".join(d.payload for d in up + down)
    initials = os.path.join(t.dir, "initials.bin")
    write_records(initials, [d.payload for d in up if rudp_type(d) == INITIAL])
    opened_path = os.path.join(t.dir, "opened.bin")
    opened = must([t.runner.attack_tool, "open-initials", initials, opened_path]).split()
    with open(opened_path, "rb") as f:
        plaintext = f.read()
    tcp = [d for d in cap if d.proto == "tcp" and plain in (d.sport, d.dport)]
    tcp_hits = sum(1 for d in tcp if m in d.payload)
    t.note(f"rudp capture: {len(up)} datagrams up, {len(down)} down, "
           f"{sum(len(d.payload) for d in up + down)} bytes, marker in {len(leaks)}; "
           f"INITIALs {' '.join(opened)} with the public key; control TCP: {len(tcp)} "
           f"segments, marker in {tcp_hits}")
    t.expect(len(up) + len(down) > 100 and up and down,
             f"captured {len(up)} + {len(down)} datagrams, want > 100 in both directions")
    t.expect(not leaks and m not in stream, f"the marker is in {len(leaks)} captured "
             "datagrams", cli)
    t.expect(opened[0] == "opened" and int(opened[1]) >= 1,
             f"no captured INITIAL opened with the public key ({' '.join(opened)})")
    t.expect(m not in plaintext, "the marker is in an INITIAL: 0-RTT bytes sealed under the "
             "public initial key (anyone can open them)", cli)
    t.expect(tcp_hits > 0, f"control: the marker is in none of {len(tcp)} plain TCP segments "
             "(the capture does not work)", ctl)


def wait_for(cond, seconds):
    """Polls |cond| every 20 ms until it holds or |seconds| pass; returns
    its last value."""
    end = time.monotonic() + seconds
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)
    return cond()


@test("ticket-spoofing", limit=60)
def t_ticket_spoofing(t):
    """An attacker that is a client of the server holds a genuine
    resumption ticket, bound to its own address.  INITIALs resumed with it,
    carrying 0-RTT data, from spoofed addresses: no connection, nothing
    delivered, only REFUSEs far smaller than what came.  The same INITIAL
    from the attacker's own address is accepted at once (it was good)."""
    srv = t.server()
    t.count("s", "INPUT", "in-spoofed", "-s", SPOOF_NET, "-p", "udp", "--dport", t.port)
    t.count("s", "OUTPUT", "out-spoofed", "-d", SPOOF_NET, "-p", "udp", "--sport", t.port)
    own = t.spawn("a", "attacker-client", t.agent("once-client", SRV, t.port, "get a ticket"),
                  shim=True)
    own.wait_ok(20, "ok")
    tickets = os.path.join(t.state_dir("a"), "tickets")
    names = os.listdir(tickets) if os.path.isdir(tickets) else []
    t.expect(len(names) == 1, f"the attacker's client kept tickets {names}, want one", own)
    records = t.initials(300, stream=True, name="resumed", ticket=os.path.join(tickets, names[0]))
    t.flood(records, 1.0, name="flood").wait_ok(20, "sent 300 ")
    wait_for(lambda: t.counter("s", "OUTPUT", "out-spoofed")[0] >= 300, 5)
    (pin, bin_), (pout, bout) = t.counter("s", "INPUT", "in-spoofed"), \
        t.counter("s", "OUTPUT", "out-spoofed")
    t.note(f"spoofed: {pin} datagrams, {bin_} bytes in; {pout} datagrams, {bout} bytes out "
           f"({bout / max(bin_, 1):.3f}x)")
    t.expect(pin == 300, f"{pin} of 300 spoofed INITIALs reached the server", srv)
    t.expect(pout <= pin and bout * 20 <= bin_, f"the server sent {pout} datagrams, {bout} "
             f"bytes to spoofed addresses for {pin}, {bin_} bytes (want only small refusals)",
             srv)
    t.expect(accepts(srv) == [(t.port, ATK)], f"accepted {accepts(srv)}, want only the "
             "attacker's own first connection", srv)
    first = read_records(records)[0]
    t.inject([datagram(ATK, 40100, SRV, t.port, first)], name="inject-own")
    got = wait_for(lambda: accepts(srv) == [(t.port, ATK)] * 2, 5)
    t.expect(got, f"control: the resumed INITIAL from the ticket's own address was not "
             f"accepted at once (accepted {accepts(srv)})", srv)


def write_key(t, name, data):
    """Writes a key file of |data| in the test's directory; returns its path."""
    path = os.path.join(t.dir, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def refused(t, name, port, key, want):
    """Connects with the key file |key| (or none) to |port|: the connect
    must fail with ECONNREFUSED in < 1 s, and stderr hold one line, with
    |want| in it."""
    env = {"RUDP_KEY_FILE": key} if key else {}
    p = t.spawn("c", name, t.tool("connect-errno", SRV, port), shim=True, env=env)
    p.wait_ok(15)
    words = p.out().split()
    lines = p.err().strip().splitlines()
    t.expect(len(words) >= 2 and words[0] == "ECONNREFUSED" and int(words[1]) < 1000,
             f"{name}: got {' '.join(words)!r}, want ECONNREFUSED in < 1000 ms", p)
    t.expect(len(lines) == 1 and want in lines[0],
             f"{name}: {len(lines)} stderr lines, want one containing {want!r}", p)
    t.note(f"{name}: {' '.join(words[:2])} ms; {lines[0]}")


def bad_key(t, name, path):
    """A program under the shim with RUDP_KEY_FILE=|path| must not run:
    status 2, nothing on stdout, one stderr line naming variable and path."""
    p = t.spawn("c", name, ["sh", "-c", "echo ran"], shim=True, env={"RUDP_KEY_FILE": path})
    rc = p.wait(10)
    lines = p.err().strip().splitlines()
    t.expect(rc == 2 and p.out() == "", f"{name}: status {rc}, stdout {p.out()!r} "
             "(want 2, and the program not run)", p)
    t.expect(len(lines) == 1 and "RUDP_KEY_FILE" in lines[0] and path in lines[0],
             f"{name}: {len(lines)} stderr lines, want one naming RUDP_KEY_FILE and {path}", p)


@test("psk", limit=60, nports=2)
def t_psk(t):
    """RUDP_KEY_FILE: the same key echoes; a different key, a key on one
    end only are refused at once with the reason; bad key files stop the
    program before it runs."""
    k1, k2 = write_key(t, "k1", os.urandom(32)), write_key(t, "k2", os.urandom(32))
    keyed, open_port = t.ports
    for name, port, env in (("server-key", keyed, {"RUDP_KEY_FILE": k1}),
                            ("server-nokey", open_port, {})):
        srv = t.spawn("s", name, t.tool("echo-server", port), shim=True, env=env)
        srv.wait_line("listening", 10)
    same = t.spawn("c", "same-key", t.tool("threads-client", SRV, keyed, 2, 256 * KIB),
                   shim=True, env={"RUDP_KEY_FILE": k1})
    same.wait_ok(30, "ok 2")
    refused(t, "other-key", keyed, k2, "pre-shared key mismatch")
    refused(t, "no-client-key", keyed, None, "requires a pre-shared key")
    refused(t, "no-server-key", open_port, k1, "has no pre-shared key")
    bad_key(t, "missing-file", os.path.join(t.dir, "no-such-key"))
    bad_key(t, "short-file", write_key(t, "short", os.urandom(10)))
    os.makedirs(os.path.join(t.dir, "key-dir"))
    bad_key(t, "directory", os.path.join(t.dir, "key-dir"))


def replay_initials(t, initials, cport, name):
    """Replays the captured INITIALs from the client's own address and
    port and from the attacker's."""
    items = []
    for d in initials:
        items.append(datagram(CLI, cport, SRV, d.dport, d.payload))
        items.append(datagram(ATK, 40040, SRV, d.dport, d.payload))
    t.inject(items, name=name)


def replay_round(t, port, key, label, sniff_path):
    """One connection with 0-RTT data under the key, then its INITIALs
    replayed twice once its session has ended.  Returns the INITIALs."""
    before = len(read_capture(sniff_path))
    text = f"REPLAY-{label}-" + os.urandom(6).hex()
    cli = t.spawn("c", f"client-{label}", t.agent("once-client", SRV, port, text), shim=True,
                  env={"RUDP_KEY_FILE": key, "RUDP_FASTOPEN": "1"})
    cli.wait_ok(20, "ok")
    initials = flow(read_capture(sniff_path)[before:], CLI, SRV, port, INITIAL)
    t.expect(initials, f"{label}: no INITIAL captured")
    for i in range(2):
        time.sleep(1.5)  # the session has ended: its connection IDs are free
        replay_initials(t, initials, initials[0].sport, f"replay-{label}-{i}")
    time.sleep(1.0)
    return initials


@test("psk-replay", limit=60, nports=2)
def t_psk_replay(t):
    """A captured INITIAL with 0-RTT data under a pre-shared key, replayed
    from the client's address and the attacker's once its session ended,
    never reaches the program again (SECURITY.md "0-RTT is not early"):
    also with RUDP_RETRY=always, where the INITIAL carries a retry token."""
    key = write_key(t, "key", os.urandom(32))
    sniffer, cap_path = t.sniff()
    srv = t.server(*t.ports[:1], env={"RUDP_KEY_FILE": key}, name="server-auto")
    replay_round(t, t.port, key, "auto", cap_path)
    got = accepts(srv)
    t.note(f"auto: accepted {got}")
    t.expect(got == [(t.port, CLI)], f"RUDP_RETRY=auto: the program accepted {got} for one "
             "connection: a replayed INITIAL reached it", srv)
    srv2 = t.server(t.ports[1], env={"RUDP_KEY_FILE": key, "RUDP_RETRY": "always"},
                    name="server-always")
    initials = replay_round(t, t.ports[1], key, "always", cap_path)
    got = accepts(srv2)
    tokens = sum(1 for d in initials if token_len(d) > 0)
    t.note(f"always: {len(initials)} INITIALs captured ({tokens} with a retry token), "
           f"accepted {got}; ends: {srv2.lines('end')}")
    t.expect(tokens >= 1, "RUDP_RETRY=always: the client sent no INITIAL with a token")
    t.expect(got == [(t.ports[1], CLI)], f"RUDP_RETRY=always: the program accepted {got} for "
             "one connection: a replayed INITIAL with its retry token reached it again "
             "(0-RTT replayed into the program)", srv2)
    sniffer.stop(signal.SIGTERM)


# ------------------------------------------------------------------ runner

class Runner:
    """Holds the suite's options and scratch directory."""

    def __init__(self, args):
        self.shim = os.path.abspath(args.shim)
        self.tool = os.path.abspath(args.tool)
        self.attack_tool = os.path.abspath(args.attack_tool)
        self.log = args.log
        self.keep = args.keep
        self.verbose = args.verbose
        self.tmp = tempfile.mkdtemp(prefix="rudp-attack-")

    def run_one(self, name, limit, nports, fn):
        """Runs one test on its own LAN; returns (ok, line, details)."""
        t = Test(self, name, limit, nports)
        start = time.monotonic()
        try:
            t.setup()
            fn(t)
            dropped = t.tcp_dropped()
            t.expect(dropped == 0, f"{dropped} TCP packets were dropped: something fell "
                     "back to TCP")
            return True, f"PASS {name} ({time.monotonic() - start:.1f}s)", \
                [f"measured: {n}" for n in t.notes]
        except Failure as f:
            return (False, f"FAIL {name}: {f} ({time.monotonic() - start:.1f}s)",
                    [f"measured: {n}" for n in t.notes] + f.details)
        except Exception as e:  # a bug in the test itself: report, go on
            return False, f"FAIL {name}: harness error {e!r}", []
        finally:
            t.teardown()
            if not self.keep:
                shutil.rmtree(t.dir, ignore_errors=True)

    def close(self):
        """Deletes the scratch directory unless --keep."""
        if self.keep:
            print(f"kept {self.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def preflight(args):
    """Returns None when the machine can run the suite, else (code,
    message): skip (77) or fail."""
    if os.geteuid() != 0:
        return SKIP, "skipped: the attack suite needs root (network namespaces, iptables)"
    missing = [c for c in ("ip", "iptables", "sysctl", "env", "sh") if shutil.which(c) is None]
    if missing:
        return 1, f"missing programs: {' '.join(missing)} (scripts/setup installs them)"
    for path, what in ((args.shim, "--shim"), (args.tool, "--tool"),
                       (args.attack_tool, "--attack-tool")):
        if not os.path.isfile(path):
            return 1, f"{what} {path}: no such file"
    probe = f"rudp-atk-{os.getpid()}-probe"
    rc, out = quiet(["ip", "netns", "add", probe])
    if rc != 0:
        return SKIP, f"skipped: cannot make a network namespace here: {out.strip()}"
    rc, out = quiet(["ip", "-n", probe, "link", "add", "br0", "type", "bridge"])
    quiet(["ip", "netns", "del", probe])
    if rc != 0:
        return SKIP, f"skipped: cannot make a bridge here: {out.strip()}"
    return None


def parse_args(argv):
    """Parses the command line."""
    ap = argparse.ArgumentParser(description="rudp attack suite (needs root)")
    ap.add_argument("--shim", default=os.path.join(REPO, "build/shim/librudp_shim.so"))
    ap.add_argument("--tool", default=os.path.join(REPO, "build/tests/e2e/rudp-e2e-tool"))
    ap.add_argument("--attack-tool",
                    default=os.path.join(REPO, "build/tests/attack/rudp-attack-tool"))
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these tests")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--log", help="RUDP_LOG for every shimmed process")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--verbose", action="store_true", help="print evidence for passes too")
    return ap.parse_args(argv)


def main(argv):
    """Runs the selected tests and prints the summary; returns the status."""
    args = parse_args(argv)
    if args.list:
        for name, _, _, fn in TESTS:
            print(f"{name:26} {fn.__doc__.splitlines()[0]}")
        return 0
    selected = TESTS
    if args.only:
        unknown = set(args.only) - {x[0] for x in TESTS}
        if unknown:
            print(f"unknown test(s): {' '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        selected = [x for x in TESTS if x[0] in args.only]
    pre = preflight(args)
    if pre is not None:
        print(pre[1])
        if pre[0] != SKIP:
            print("0 passed, 1 failed")
        return pre[0]
    atexit.register(cleanup_all)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    runner = Runner(args)
    passed = failed = 0
    try:
        for name, limit, nports, fn in selected:
            ok, line, details = runner.run_one(name, limit, nports, fn)
            print(line, flush=True)
            for d in details:
                if not ok or args.verbose or d.startswith("measured:"):
                    print(f"    {d}", flush=True)
            passed, failed = passed + ok, failed + (not ok)
    except Interrupted as e:
        print(f"interrupted ({e}); cleaning up", flush=True)
        failed += 1
    finally:
        cleanup_all()
        runner.close()
    print(f"{passed} passed, {failed} failed", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
