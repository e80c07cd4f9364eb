#!/usr/bin/env python3
"""run.py — the differential conformance suite: a program cannot tell.

DESIGN.md §6: "each socket behaviour is a small program whose trace (return
values, errno names, readiness masks, bytes) is recorded under kernel TCP
and under the shim and compared; a difference fails unless it is a listed,
reasoned limit."  The programs are the cases of conformance-tool (tool.c and
cases_*.c beside this file); each runs both of its ends and prints a trace
that is a pure function of the behaviour (tool.h says how ports, fds, times
and counts are kept out of it).

For every case this runner:

* runs the tool in a fresh network namespace (rudp-conf-<pid>-<n>, loopback
  only) under kernel TCP: the reference trace;
* runs it again in another fresh namespace under the shim
  (`env LD_PRELOAD=... RUDP_PORTS=<port>`, plus the case's variables from
  SHIM_ENV), where iptables and ip6tables drop TCP to and from the case's
  port in INPUT and OUTPUT, as tests/e2e/run.py does.  After the run it reads
  the rule counters: TCP packets dropped on the port mean something fell back
  to TCP, and a line saying so is added to the shim's trace;
* compares the traces line by line.  Identical: PASS.  Different: FAIL,
  unless the case is listed in known.txt ("case: reason"), then XFAIL.  A
  listed case whose traces now match FAILs with "fixed, remove it from
  known.txt", so the list stays true.

--repeat-plain N / --repeat-shim N run each side N times: the kernel traces
must all be identical (a case whose reference varies is a broken case and
fails), and a shim trace that varies from run to run is reported as FLAKY
(a shim bug to report, never hidden: an unlisted flaky case fails).  A
listed case whose shim trace matches is run under the shim up to --confirm
(4) more times and counts as fixed only if every run matches, so that a
listed flaky difference does not make the suite flaky.

Every wait is bounded (the tool's own watchdog, and a deadline per run
here); whatever happens, the processes in a namespace are killed and the
namespace deleted: try/finally, atexit, and handlers for SIGTERM/SIGINT/
SIGHUP (meson sends SIGTERM on its timeout).

Output: one line per case, "PASS name (1.2s)", "XFAIL name: reason",
"FAIL name: why" followed by the diff of the two traces; last "N passed,
N failed, N known".  Exit status 0 when none failed, 1 otherwise, 77
(meson's skip) when not root or when this kernel cannot make namespaces.

    run.py --shim build/shim/librudp_shim.so
           --tool build/tests/conformance/conformance-tool
           [--known tests/conformance/known.txt] [--only NAME...] [--list]
           [--repeat-plain N] [--repeat-shim N] [--log LEVEL] [--keep]
           [--verbose]
"""

import argparse
import atexit
import difflib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))
from nstest import (LIVE_NAMESPACES, LIVE_PROCS, Interrupted, cleanup_all,  # noqa: E402
                    clean_env, ns_delete, on_signal, quiet)

BASE_PORT = 7600
RUN_LIMIT = 60  # seconds for one run of a case (the tool's watchdog is 40 s)

# The shim's environment for the cases that exercise one of its settings;
# under kernel TCP the same case runs without it (the program is the same).
SHIM_ENV = {
    "echo-4x1m-cubic": {"RUDP_CC": "cubic"},
    "echo-4x1m-newreno": {"RUDP_CC": "newreno"},
    "echo-4x1m-fastopen-env": {"RUDP_FASTOPEN": "1"},
    # A SIGKILLed engine cannot tell its peer; the peer learns it from the
    # idle timeout, which is shortened to keep the case bounded.
    "peer-killed": {"RUDP_IDLE_TIMEOUT_MS": "3000"},
}


class HarnessError(Exception):
    """A harness command failed (not a difference in traces)."""


def must(cmd, timeout=20):
    """Runs a harness command; raises HarnessError when it fails."""
    rc, out = quiet(cmd, timeout)
    if rc != 0:
        raise HarnessError(f"harness command failed ({rc}): {' '.join(cmd)}: "
                           f"{out.strip()[-300:]}")
    return out


# ------------------------------------------------------------- namespaces

class Namespace:
    """A fresh network namespace with loopback up; with |block| the rules
    that drop TCP to and from |port| (IPv4 and IPv6, INPUT and OUTPUT) and
    count UDP on it."""

    counter = 0

    def __init__(self, port, block):
        Namespace.counter += 1
        self.name = f"rudp-conf-{os.getpid()}-{Namespace.counter}"
        self.port = port
        must(["ip", "netns", "add", self.name])
        LIVE_NAMESPACES.add(self.name)
        must(["ip", "-n", self.name, "link", "set", "lo", "up"])
        if block:
            self.block_tcp()

    def ipt(self, tool, *args):
        """Runs iptables/ip6tables in the namespace."""
        return must(["ip", "netns", "exec", self.name, tool, "-w", "5", *args])

    def block_tcp(self):
        """Adds the DROP rules for TCP on the port and checks them."""
        for tool in ("iptables", "ip6tables"):
            for chain, flag in (("INPUT", "--dport"), ("INPUT", "--sport"),
                                ("OUTPUT", "--dport"), ("OUTPUT", "--sport")):
                self.ipt(tool, "-A", chain, "-p", "tcp", flag, str(self.port), "-j", "DROP")
            for flag in ("--dport", "--sport"):
                self.ipt(tool, "-A", "INPUT", "-p", "udp", flag, str(self.port))
            rules = self.ipt(tool, "-S")
            if rules.count("-p tcp -m tcp --") < 4 or str(self.port) not in rules:
                raise HarnessError(f"{tool} rules for port {self.port} not in place")

    def tcp_dropped(self):
        """Returns the TCP packets dropped on the port, IPv4 and IPv6."""
        dropped = 0
        ports = (f"dpt:{self.port}", f"spt:{self.port}")
        for tool in ("iptables", "ip6tables"):
            for line in self.ipt(tool, "-L", "-v", "-x", "-n").splitlines():
                f = line.split()
                if f and f[0].isdigit() and "DROP" in f and "tcp" in f and \
                        any(x in ports for x in f):
                    dropped += int(f[0])
        return dropped

    def delete(self):
        """Kills what still runs in the namespace and deletes it."""
        ns_delete(self.name)


# -------------------------------------------------------------------- runs

def run_tool(args, case, port, shim, workdir, tag):
    """Runs one case once (|shim|: under the shim, in a namespace that drops
    TCP on |port|).  Returns (trace lines, stderr text).  A run in which
    the loader could not preload the shim (the library is being rebuilt)
    is tried again, up to three times."""
    for attempt in range(3):
        lines, err = run_once(args, case, port, shim, workdir, tag)
        if "cannot be preloaded" not in err:
            return lines, err
        time.sleep(2)
    raise HarnessError(f"{args.shim} could not be preloaded: {err.strip()[:200]}")


def run_once(args, case, port, shim, workdir, tag):
    """One run of run_tool: makes the namespace, runs the tool with a
    deadline, adds the harness's own lines (a kill, a non-zero status, TCP
    packets dropped on the port) and deletes the namespace."""
    ns = Namespace(port, block=shim)
    out_path = os.path.join(workdir, f"{case}.{tag}.out")
    err_path = os.path.join(workdir, f"{case}.{tag}.err")
    words = []
    if shim:
        words = [f"LD_PRELOAD={args.shim}", f"RUDP_PORTS={port}"]
        if args.log:
            words.append(f"RUDP_LOG={args.log}")
        words += [f"{k}={v}" for k, v in SHIM_ENV.get(case, {}).items()]
    cmd = ["ip", "netns", "exec", ns.name, "env"] + words + [args.tool, case, str(port)]
    extra = []
    try:
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                 env=clean_env(), cwd=workdir, start_new_session=True)
            LIVE_PROCS.append(p)
            try:
                rc = p.wait(timeout=RUN_LIMIT)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                rc = p.wait()
                extra.append(f"harness: still running after {RUN_LIMIT} s, killed")
            LIVE_PROCS.remove(p)
        if rc != 0:
            extra.append(f"harness: the tool exited with status {rc}")
        if shim:
            dropped = ns.tcp_dropped()
            if dropped:
                extra.append(f"harness: {dropped} TCP packets on port P were dropped "
                             "(something fell back to TCP)")
    finally:
        ns.delete()
    with open(out_path, "rb") as f:
        lines = f.read().decode(errors="replace").splitlines()
    with open(err_path, "rb") as f:
        err_text = f.read().decode(errors="replace")
    return lines + extra, err_text


def diff(a, b):
    """Returns the unified diff of two traces (kernel first)."""
    return list(difflib.unified_diff(a, b, "kernel TCP", "under the shim", lineterm="", n=2))


def judge(name, plains, shims, known):
    """Returns (verdict, reason, details) for a case from its traces:
    verdict is "PASS", "FAIL" or "XFAIL"."""
    ref = plains[0][0]
    for lines, _ in plains[1:]:
        if lines != ref:
            return "FAIL", "the kernel TCP trace varies from run to run (a broken case)", \
                diff(ref, lines)
    shim_traces = [lines for lines, _ in shims]
    flaky = any(t != shim_traces[0] for t in shim_traces[1:])
    differing = [t for t in shim_traces if t != ref]
    note = " [FLAKY: the shim's trace varies from run to run]" if flaky else ""
    if not differing:
        if name in known:
            return "FAIL", "fixed: the traces match now, remove it from known.txt", []
        return "PASS", "", []
    details = diff(ref, differing[0])
    err = [e for _, e in shims if e.strip()]
    if err:
        details += ["stderr under the shim:"] + err[0].strip().splitlines()[-6:]
    if name in known:
        return "XFAIL", known[name] + note, details
    return "FAIL", "the traces differ" + note, details


def run_case(args, index, name, known, workdir):
    """Runs one case on both sides as often as asked; returns (verdict,
    line, details)."""
    port = BASE_PORT + index
    start = time.monotonic()
    try:
        plains = [run_tool(args, name, port, False, workdir, f"plain{i}")
                  for i in range(args.repeat_plain)]
        shims = [run_tool(args, name, port, True, workdir, f"shim{i}")
                 for i in range(args.repeat_shim)]
        # A listed case that matched may be flaky: it is "fixed" only when
        # it keeps matching.
        while name in known and len(shims) < args.repeat_shim + args.confirm and \
                all(t == plains[0][0] for t, _ in shims):
            shims.append(run_tool(args, name, port, True, workdir, f"shim{len(shims)}"))
    except HarnessError as e:
        return "FAIL", f"FAIL {name}: {e}", []
    verdict, reason, details = judge(name, plains, shims, known)
    took = f"({time.monotonic() - start:.1f}s)"
    line = f"{verdict} {name} {took}" + (f": {reason}" if reason else "")
    if args.verbose:
        details = details + ["kernel TCP trace:"] + plains[0][0]
    return verdict, line, details


# -------------------------------------------------------------------- main

def read_known(path):
    """Returns {case: reason} from known.txt ('#' comments, blank lines)."""
    known = {}
    if not path:
        return known
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            name, sep, reason = line.partition(":")
            if not sep or not reason.strip():
                raise SystemExit(f"{path}:{n}: want 'case-name: reason'")
            known[name.strip()] = reason.strip()
    return known


def list_cases(tool):
    """Returns [(name, what)] from `conformance-tool list`."""
    out = subprocess.run([tool, "list"], stdout=subprocess.PIPE, check=True, timeout=10,
                         env=clean_env()).stdout.decode()
    return [tuple(l.split("\t", 1)) for l in out.splitlines() if l]


def preflight(args):
    """Returns (code, message) when the suite cannot run here, else None."""
    if os.geteuid() != 0:
        return SKIP, "skipped: the conformance suite needs root (network namespaces, iptables)"
    missing = [c for c in ("ip", "iptables", "ip6tables", "env") if shutil.which(c) is None]
    if missing:
        return 1, f"missing programs: {' '.join(missing)} (scripts/setup installs them)"
    for path, what in ((args.shim, "--shim"), (args.tool, "--tool")):
        if not os.path.isfile(path):
            return 1, f"{what} {path}: no such file"
    probe = f"rudp-conf-{os.getpid()}-probe"
    rc, out = quiet(["ip", "netns", "add", probe])
    if rc != 0:
        return SKIP, f"skipped: cannot make a network namespace here: {out.strip()}"
    quiet(["ip", "netns", "del", probe])
    return None


def parse_args(argv):
    """Parses the command line."""
    ap = argparse.ArgumentParser(description="rudp differential conformance suite (root)")
    ap.add_argument("--shim", default=os.path.join(REPO, "build/shim/librudp_shim.so"))
    ap.add_argument("--tool",
                    default=os.path.join(REPO, "build/tests/conformance/conformance-tool"))
    ap.add_argument("--known", default=os.path.join(HERE, "known.txt"))
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these cases")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--repeat-plain", type=int, default=1, metavar="N")
    ap.add_argument("--repeat-shim", type=int, default=1, metavar="N")
    ap.add_argument("--confirm", type=int, default=4, metavar="N",
                    help="extra shim runs before a listed case counts as fixed")
    ap.add_argument("--log", help="RUDP_LOG for the shimmed runs")
    ap.add_argument("--keep", action="store_true", help="keep the traces' directory")
    ap.add_argument("--verbose", action="store_true", help="print every kernel trace")
    args = ap.parse_args(argv)
    # The cases run from other directories: relative paths would not resolve.
    args.shim, args.tool, args.known = (os.path.abspath(x) for x in (args.shim, args.tool, args.known))
    return args


def select(args, cases, known):
    """Returns the cases to run, or an error message."""
    names = {n for n, _ in cases}
    stale = sorted(set(known) - names)
    if stale:
        return None, f"known.txt names cases that do not exist: {' '.join(stale)}"
    if not args.only:
        return cases, None
    unknown = set(args.only) - names
    if unknown:
        return None, f"unknown case(s): {' '.join(sorted(unknown))}"
    return [c for c in cases if c[0] in args.only], None


def run_all(args, selected, indexes, known, workdir, counts):
    """Runs the selected cases, counting verdicts in |counts|."""
    for name, _ in selected:
        verdict, line, details = run_case(args, indexes[name], name, known, workdir)
        counts[verdict] += 1
        print(line, flush=True)
        if verdict != "PASS" or args.verbose:
            for d in details:
                print(f"    {d}", flush=True)


def main(argv):
    """Runs the cases and prints the summary; returns the exit status."""
    args = parse_args(argv)
    if args.list:
        try:
            for name, what in list_cases(args.tool):
                print(f"{name:38} {what}")
        except BrokenPipeError:
            pass
        return 0
    pre = preflight(args)
    if pre is not None:
        print(pre[1])
        if pre[0] != SKIP:
            print("0 passed, 1 failed, 0 known")
        return pre[0]
    known = read_known(args.known)
    cases = list_cases(args.tool)
    indexes = {n: i for i, (n, _) in enumerate(cases)}
    selected, err = select(args, cases, known)
    if err:
        print(err)
        print("0 passed, 1 failed, 0 known")
        return 1
    atexit.register(cleanup_all)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    workdir = tempfile.mkdtemp(prefix="rudp-conformance-")
    start = time.monotonic()
    counts = {"PASS": 0, "FAIL": 0, "XFAIL": 0}
    try:
        run_all(args, selected, indexes, known, workdir, counts)
    except Interrupted as e:
        print(f"interrupted ({e}); cleaning up", flush=True)
        counts["FAIL"] += 1
    finally:
        cleanup_all()
        if args.keep:
            print(f"kept {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['XFAIL']} known "
          f"({time.monotonic() - start:.0f}s)", flush=True)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
