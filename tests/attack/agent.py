#!/usr/bin/env python3
"""agent.py — the programs of the attack suite that run inside a namespace.

tests/attack/run.py starts each of these with `ip netns exec NS env ...`:
the attacker's tools without the shim, the victims' programs under it.

    agent.py sniff IFACE OUTFILE
        An AF_PACKET tap on IFACE: every frame, both directions, appended to
        OUTFILE as records (u8 1 = sent by this host / 0 = received, u32
        length, the Ethernet frame), flushed at once so the runner can read
        the capture while it grows.  A UDP segmentation-offload super-frame
        (the engine sends runs of datagrams as one; a veth passes them on
        whole) is recorded as the datagrams a wire would carry, cut at its
        segment size (from the virtio-net header PACKET_VNET_HDR gives).
        Prints "ready" once bound; ends on SIGTERM.
    agent.py inject SPECFILE
        Sends the datagrams of a JSON list ({"src", "sport", "dst", "dport",
        "hex", "gap"}) as raw IPv4/UDP with those source addresses (an
        IP_HDRINCL socket: spoofing), "gap" seconds after each.  Prints
        "sent N BYTES".
    agent.py flood RECORDS DST DPORT NET SECONDS [--group K]
        Sends the datagrams of RECORDS (rudp-attack-tool's u16-length
        records) to DST:DPORT, each group of K consecutive records (a
        session's INITIAL and its retransmissions) from one random source
        address in NET and random port, spread evenly over SECONDS: first
        record 0 of every group, then record 1 of every group, and so on.
        Prints "sent N BYTES SECONDS".
    agent.py server PORT...
        A TCP echo server on 0.0.0.0:PORT for each PORT (a thread per
        connection).  Prints "listening" once all listen, then
        "accept LPORT HOST PORT" per accepted connection and
        "end LPORT HOST BYTES FIRST" at its EOF (FIRST: its first bytes).
    agent.py session-client HOST PORT CTLDIR
        One long connection in phases, each started by a file in CTLDIR:
        64 KiB echoed ("phase1 ok"), then at CTLDIR/trickle 2 KiB
        ("trickle ok"), then at CTLDIR/go 1 MiB ("echo ok SENT RECEIVED",
        sha256s) and a second connection of 64 KiB ("second ok"), "done".
        Any error prints "ERROR ..." and exits 1.
    agent.py marker-client HOST PORT MARKER BYTES
        Writes MARKER repeated to BYTES bytes while reading the echo;
        prints "ok BYTES" when it came back intact (exit 1 otherwise).
    agent.py once-client HOST PORT TEXT
        Connects, writes TEXT, half-closes, reads the echo to EOF; prints
        "ok" when it is TEXT.

Every client arms an alarm (--timeout SECS, default 60; exit 3 when it
fires) so that nothing the runner starts can hang.
"""

import array
import hashlib
import ipaddress
import json
import os
import random
import signal
import socket
import struct
import sys
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
SO_RCVBUFFORCE = 33
SOL_PACKET, PACKET_VNET_HDR = 263, 15
VNET_HDR = struct.Struct("<BBHHHH")  # flags, gso_type, hdr_len, gso_size, csum_start/offset
GSO_UDP_L4 = 5
KIB = 1024


def emit(line):
    """Prints one result line and flushes it."""
    print(line, flush=True)


def on_alarm(signum, frame):
    """The time limit passed: report it and end at once."""
    os.write(1, b"TIMEOUT\n")
    os._exit(3)


# ----------------------------------------------------------------- sniffing

STOP = False


def on_term(signum, frame):
    """SIGTERM ends the capture loop."""
    global STOP
    STOP = True


def wire_frames(raw):
    """Returns the frames a wire would carry for |raw| (a virtio-net header,
    then the frame): a UDP segmentation super-frame cut into its datagrams,
    each with its IP and UDP lengths set; any other frame as it is."""
    _, gso_type, _, gso_size, _, _ = VNET_HDR.unpack_from(raw)
    frame = raw[VNET_HDR.size:]
    if gso_type != GSO_UDP_L4 or gso_size == 0 or frame[12:14] != b"\x08\x00":
        return [frame]
    ihl = (frame[14] & 15) * 4
    l4 = 14 + ihl
    out = []
    for off in range(l4 + 8, len(frame), gso_size):
        seg = frame[off:off + gso_size]
        ip = bytearray(frame[14:l4])
        struct.pack_into("!H", ip, 2, ihl + 8 + len(seg))
        udp = bytearray(frame[l4:l4 + 8])
        struct.pack_into("!H", udp, 4, 8 + len(seg))
        out.append(frame[:14] + bytes(ip) + bytes(udp) + seg)
    return out


def cmd_sniff(iface, path):
    """Copies every frame seen on |iface| into |path| until SIGTERM."""
    signal.signal(signal.SIGTERM, on_term)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
    s.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
    s.bind((iface, ETH_P_ALL))
    s.settimeout(0.1)
    with open(path, "wb") as out:
        emit("ready")
        while not STOP:
            try:
                raw, addr = s.recvfrom(65536 + VNET_HDR.size)
            except (socket.timeout, InterruptedError):
                continue
            for frame in wire_frames(raw):
                out.write(struct.pack(">BI", addr[2] == PACKET_OUTGOING, len(frame)) + frame)
            out.flush()
    return 0


# ---------------------------------------------------------------- injecting

def checksum(data):
    """Returns the Internet checksum (RFC 1071) of |data|."""
    if len(data) % 2:
        data += b"\0"
    words = array.array("H", data)
    if sys.byteorder == "little":
        words.byteswap()
    s = sum(words)
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ip_udp(src, sport, dst, dport, payload):
    """Returns an IPv4 datagram carrying UDP |payload| from src:sport to
    dst:dport, with a correct UDP checksum (the kernel fills the IP one)."""
    ulen = 8 + len(payload)
    s, d = socket.inet_aton(src), socket.inet_aton(dst)
    pseudo = s + d + struct.pack("!BBH", 0, 17, ulen)
    csum = checksum(pseudo + struct.pack("!HHHH", sport, dport, ulen, 0) + payload) or 0xFFFF
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + ulen, 0, 0x4000, 64, 17, 0, s, d)
    return ip + struct.pack("!HHHH", sport, dport, ulen, csum) + payload


def raw_socket():
    """Returns a raw socket that sends whole IPv4 datagrams (IP_HDRINCL)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    return s


def raw_send(s, pkt, dst):
    """Sends |pkt| to |dst|, waiting out a full queue (ENOBUFS)."""
    while True:
        try:
            s.sendto(pkt, (dst, 0))
            return
        except OSError as e:
            if e.errno not in (105, 11):  # ENOBUFS, EAGAIN
                raise
            time.sleep(0.001)


def cmd_inject(spec_path):
    """Sends every datagram of the spec file."""
    with open(spec_path) as f:
        spec = json.load(f)
    s = raw_socket()
    total = 0
    for item in spec:
        payload = bytes.fromhex(item["hex"])
        raw_send(s, ip_udp(item["src"], item["sport"], item["dst"], item["dport"], payload),
                 item["dst"])
        total += len(payload)
        if item.get("gap"):
            time.sleep(item["gap"])
    emit(f"sent {len(spec)} {total}")
    return 0


def read_records(path):
    """Returns the datagrams of a rudp-attack-tool record file."""
    with open(path, "rb") as f:
        data = f.read()
    out, off = [], 0
    while off + 2 <= len(data):
        n = struct.unpack_from(">H", data, off)[0]
        out.append(data[off + 2:off + 2 + n])
        off += 2 + n
    return out


def random_source(hosts, rng):
    """Returns a random (address, port) among |hosts|."""
    return str(hosts[rng.randrange(len(hosts))]), rng.randrange(1024, 65536)


def cmd_flood(path, dst, dport, net, seconds, group):
    """Sends the records from spoofed sources, paced over |seconds|."""
    recs = read_records(path)
    hosts = list(ipaddress.ip_network(net).hosts())
    rng = random.Random(os.urandom(16))
    ngroups = len(recs) // group
    sources = [random_source(hosts, rng) for _ in range(ngroups)]
    order = [(g, r) for r in range(group) for g in range(ngroups)]
    s = raw_socket()
    start, total = time.monotonic(), 0
    for i, (g, r) in enumerate(order):
        due = start + seconds * i / len(order)
        if due > time.monotonic() + 0.002:
            time.sleep(due - time.monotonic())
        payload = recs[g * group + r]
        raw_send(s, ip_udp(sources[g][0], sources[g][1], dst, dport, payload), dst)
        total += len(payload)
    emit(f"sent {len(order)} {total} {time.monotonic() - start:.2f}")
    return 0


# ------------------------------------------------------------------ serving

PRINT_LOCK = threading.Lock()


def locked_emit(line):
    """Prints one line from any thread."""
    with PRINT_LOCK:
        emit(line)


def serve_conn(conn, lport, peer):
    """Echoes one accepted connection to its EOF and reports it."""
    total, first = 0, b""
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            if len(first) < 32:
                first += chunk[:32 - len(first)]
            total += len(chunk)
            conn.sendall(chunk)
        conn.shutdown(socket.SHUT_WR)
    except OSError as e:
        locked_emit(f"error {lport} {peer[0]} {e!r}")
    finally:
        conn.close()
    locked_emit(f"end {lport} {peer[0]} {total} {first.decode(errors='replace')!r}")


def accept_loop(lsock, lport):
    """Accepts connections on |lsock| forever, a thread each."""
    while True:
        conn, peer = lsock.accept()
        locked_emit(f"accept {lport} {peer[0]} {peer[1]}")
        threading.Thread(target=serve_conn, args=(conn, lport, peer), daemon=True).start()


def cmd_server(ports):
    """Runs the echo server on every port until killed."""
    threads = []
    for port in ports:
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("0.0.0.0", port))
        ls.listen(128)
        threads.append(threading.Thread(target=accept_loop, args=(ls, port), daemon=True))
    for th in threads:
        th.start()
    locked_emit("listening")
    while True:
        time.sleep(3600)


# ------------------------------------------------------------------ clients

def echo(sock, data):
    """Writes |data| while reading its echo (a thread writes); returns the
    bytes read back once as many as were written arrived."""
    err = []

    def writer():
        try:
            sock.sendall(data)
        except OSError as e:
            err.append(e)

    th = threading.Thread(target=writer)
    th.start()
    got = bytearray()
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    th.join()
    if err:
        raise err[0]
    return bytes(got)


def echo_checked(sock, nbytes, what):
    """Echoes |nbytes| random bytes; raises RuntimeError when the echo
    differs.  Returns (sha256 sent, sha256 received)."""
    data = os.urandom(nbytes)
    got = echo(sock, data)
    sent, back = hashlib.sha256(data).hexdigest(), hashlib.sha256(got).hexdigest()
    if sent != back:
        raise RuntimeError(f"{what}: {len(got)} of {nbytes} bytes back, sha256 differs")
    return sent, back


def wait_file(path, limit):
    """Waits until |path| exists; raises RuntimeError after |limit| s."""
    end = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise RuntimeError(f"no {os.path.basename(path)} after {limit} s")
        time.sleep(0.02)


def session_phases(host, port, ctl):
    """The phases of session-client (see the file comment)."""
    sock = socket.create_connection((host, port), timeout=30)
    echo_checked(sock, 64 * KIB, "phase1")
    emit("phase1 ok")
    wait_file(os.path.join(ctl, "trickle"), 60)
    echo_checked(sock, 2 * KIB, "trickle")
    emit("trickle ok")
    wait_file(os.path.join(ctl, "go"), 60)
    sent, back = echo_checked(sock, 1024 * KIB, "echo")
    emit(f"echo ok {sent} {back}")
    second = socket.create_connection((host, port), timeout=30)
    echo_checked(second, 64 * KIB, "second")
    emit("second ok")
    for s in (second, sock):
        s.shutdown(socket.SHUT_WR)
        if s.recv(1):
            raise RuntimeError("bytes after the echo")
        s.close()
    emit("done")


def cmd_session_client(host, port, ctl):
    """Runs the phases; any failure is one ERROR line and exit 1."""
    try:
        session_phases(host, port, ctl)
        return 0
    except (OSError, RuntimeError) as e:
        emit(f"ERROR {e!r}")
        return 1


def cmd_marker_client(host, port, marker, nbytes):
    """Echoes the marker repeated to |nbytes| bytes."""
    data = (marker.encode() * (nbytes // len(marker) + 1))[:nbytes]
    try:
        sock = socket.create_connection((host, port), timeout=30)
        got = echo(sock, data)
        sock.close()
    except OSError as e:
        emit(f"ERROR {e!r}")
        return 1
    if got != data:
        emit(f"ERROR {len(got)} of {nbytes} bytes back, differ")
        return 1
    emit(f"ok {nbytes}")
    return 0


def cmd_once_client(host, port, text):
    """Writes |text| at once, half-closes, checks the echo."""
    try:
        sock = socket.create_connection((host, port), timeout=30)
        sock.sendall(text.encode())
        sock.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            got += chunk
        sock.close()
    except OSError as e:
        emit(f"ERROR {e!r}")
        return 1
    emit("ok" if got == text.encode() else f"ERROR echo {got[:40]!r}")
    return 0 if got == text.encode() else 1


# --------------------------------------------------------------------- main

def main(argv):
    """Dispatches to the role named by argv[1]."""
    timeout = 60
    if len(argv) > 2 and argv[1] == "--timeout":
        timeout = int(argv[2])
        argv = argv[:1] + argv[3:]
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    role, a = argv[1], argv[2:]
    if role not in ("sniff", "server"):
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(timeout)
    if role == "sniff" and len(a) == 2:
        return cmd_sniff(a[0], a[1])
    if role == "inject" and len(a) == 1:
        return cmd_inject(a[0])
    if role == "flood" and len(a) in (5, 7):
        group = int(a[6]) if len(a) == 7 and a[5] == "--group" else 1
        return cmd_flood(a[0], a[1], int(a[2]), a[3], float(a[4]), group)
    if role == "server" and a:
        return cmd_server([int(p) for p in a])
    if role == "session-client" and len(a) == 3:
        return cmd_session_client(a[0], int(a[1]), a[2])
    if role == "marker-client" and len(a) == 4:
        return cmd_marker_client(a[0], int(a[1]), a[2], int(a[3]))
    if role == "once-client" and len(a) == 3:
        return cmd_once_client(a[0], int(a[1]), a[2])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
