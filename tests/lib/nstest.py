"""nstest.py — what the namespace test runners share (tests/e2e/run.py,
tests/attack/run.py, tests/conformance/run.py, tests/netem/impaired.py).

Harness commands run without the shim (clean_env: no LD_PRELOAD, no
RUDP_*); every process a runner starts leads its own process group and is
listed in LIVE_PROCS, every namespace it makes in LIVE_NAMESPACES, so that
cleanup_all (called from finally blocks, atexit and, through on_signal's
Interrupted, on SIGTERM/SIGINT/SIGHUP) leaves nothing behind.  Proc is one
process in a namespace with its stdout and stderr in files of its test's
directory; the test object gives it .dir and .remaining().
"""

import os
import signal
import subprocess
import time


class Failure(Exception):
    """A test's assertion failed; the message is the one-line reason and
    |details| are extra lines of evidence."""

    def __init__(self, reason, details=()):
        super().__init__(reason)
        self.details = list(details)


class Interrupted(BaseException):
    """Raised from a signal handler so that every finally block runs."""


# ------------------------------------------------------------------ state

LIVE_NAMESPACES = set()  # namespaces made and not yet deleted
LIVE_PROCS = []          # Popen objects not yet reaped


def clean_env():
    """Returns this process's environment without LD_PRELOAD or RUDP_*."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("RUDP_")}


def quiet(cmd, timeout=20):
    """Runs a harness command (no shim) and returns (status, output)."""
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout, env=clean_env())
        return p.returncode, p.stdout.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout} s: {' '.join(cmd)}"


def must(cmd, timeout=20):
    """Runs a harness command; raises Failure when it does not succeed."""
    rc, out = quiet(cmd, timeout)
    if rc != 0:
        raise Failure(f"harness command failed ({rc}): {' '.join(cmd)}", out.splitlines()[-5:])
    return out


def kill_group(p, sig=signal.SIGKILL):
    """Signals the process group of Popen |p| (each child leads its own)."""
    try:
        os.killpg(p.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def reap_all():
    """Kills and reaps every process this runner started and still lives."""
    while LIVE_PROCS:
        p = LIVE_PROCS.pop()
        kill_group(p)
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def netns_kill_all(ns):
    """SIGKILLs every process still inside namespace |ns| (only namespaces
    this runner made are ever passed here)."""
    for _ in range(3):
        rc, out = quiet(["ip", "netns", "pids", ns], timeout=10)
        pids = [int(x) for x in out.split() if x.isdigit()] if rc == 0 else []
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def ns_delete(ns):
    """Kills what runs in namespace |ns| (one this runner made) and deletes
    it."""
    netns_kill_all(ns)
    quiet(["ip", "netns", "del", ns])
    LIVE_NAMESPACES.discard(ns)


def cleanup_all():
    """Kills every process and deletes every namespace this runner made."""
    reap_all()
    for ns in list(LIVE_NAMESPACES):
        ns_delete(ns)


def on_signal(signum, frame):
    """Turns SIGTERM/SIGINT/SIGHUP into an exception so cleanup runs."""
    raise Interrupted(f"signal {signum}")


# -------------------------------------------------------------- processes

class Proc:
    """A process started in namespace |ns| of |test|, with stdout and
    stderr in files of the test's directory (stdin from the file |stdin|,
    else /dev/null)."""

    def __init__(self, test, ns, name, argv, env_words, stdin=None):
        self.test = test
        self.name = name
        self.argv = argv
        self.out_path = os.path.join(test.dir, f"{name}.out")
        self.err_path = os.path.join(test.dir, f"{name}.err")
        cmd = ["ip", "netns", "exec", ns, "env"] + env_words + argv
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err, \
                open(stdin or os.devnull, "rb") as inp:
            self.popen = subprocess.Popen(cmd, stdin=inp, stdout=out, stderr=err,
                                          env=clean_env(), cwd=test.dir,
                                          start_new_session=True)
        LIVE_PROCS.append(self.popen)

    @property
    def pid(self):
        return self.popen.pid

    def out(self):
        """Returns what the process printed on stdout so far."""
        with open(self.out_path, "rb") as f:
            return f.read().decode(errors="replace")

    def err(self):
        """Returns what the process printed on stderr so far."""
        with open(self.err_path, "rb") as f:
            return f.read().decode(errors="replace")

    def lines(self, prefix=""):
        """Returns the stdout lines that start with |prefix|."""
        return [l for l in self.out().splitlines() if l.startswith(prefix)]

    def evidence(self):
        """Returns a few lines describing the process for a failure report."""
        lines = [f"{self.name}: {' '.join(self.argv)[:160]} -> status {self.popen.poll()}"]
        for label, text in (("stdout", self.out()), ("stderr", self.err())):
            tail = text.strip().splitlines()[-6:]
            lines += [f"  {label}: {line[:200]}" for line in tail]
        return lines

    def wait(self, timeout):
        """Waits up to |timeout| seconds (capped by the test's deadline) for
        the process to exit and returns its status.  Raises Failure, after
        killing it, when it does not exit in time."""
        timeout = min(timeout, self.test.remaining())
        try:
            rc = self.popen.wait(timeout=max(timeout, 0.01))
        except subprocess.TimeoutExpired:
            kill_group(self.popen)
            self.popen.wait()
            raise Failure(f"{self.name} did not finish within {timeout:.1f} s", self.evidence())
        if self.popen in LIVE_PROCS:
            LIVE_PROCS.remove(self.popen)
        return rc

    def wait_ok(self, timeout, want_stdout=None):
        """Waits for the process; raises Failure unless it exited 0 (and,
        with |want_stdout|, its last stdout line starts with it)."""
        rc = self.wait(timeout)
        if rc != 0:
            raise Failure(f"{self.name} exited with status {rc}", self.evidence())
        if want_stdout is not None:
            last = (self.out().strip().splitlines() or [""])[-1]
            if not last.startswith(want_stdout):
                raise Failure(f"{self.name} printed {last!r}, want {want_stdout!r}",
                              self.evidence())

    def wait_line(self, prefix, timeout):
        """Waits until a stdout line starts with |prefix|.  Raises Failure
        when the process exits first or the time passes."""
        end = time.monotonic() + min(timeout, self.test.remaining())
        while time.monotonic() < end:
            if self.lines(prefix):
                return
            if self.popen.poll() is not None:
                raise Failure(f"{self.name} exited ({self.popen.returncode}) before "
                              f"printing {prefix!r}", self.evidence())
            time.sleep(0.02)
        raise Failure(f"{self.name} did not print {prefix!r} within {timeout} s",
                      self.evidence())

    def stop(self, sig=signal.SIGKILL):
        """Signals the process group and reaps it."""
        kill_group(self.popen, sig)
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill_group(self.popen)
            self.popen.wait()
        if self.popen in LIVE_PROCS:
            LIVE_PROCS.remove(self.popen)
