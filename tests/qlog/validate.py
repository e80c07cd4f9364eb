#!/usr/bin/env python3
"""validate.py — checks qlog files written by rudp (RUDP_QLOG_DIR, docs/QLOG.md).

    validate.py [--expect-lost] [--quiet] FILE...

For each file:

* framing: RFC 7464 JSON text sequences, as the qlog main schema's
  JSON-SEQ serialization has it: the file starts with RS (0x1e), every
  record is one JSON object and ends with LF;
* the header record: qlog_version "0.3", qlog_format "JSON-SEQ", a trace
  with a client or server vantage point and common_fields with relative
  time, a reference_time and the original connection ID as group_id;
* every event: "time" (a number of ms, never going back), "name" (one rudp
  emits: an unknown one is an error) and "data" (an object) with the fields
  and types the schema gives that event, frames included;
* the counts: the last record, rudp:session_summary, carries the session's
  own counters; the packets and bytes in packet_sent, the packets in
  packet_received and packet_lost and the stream bytes sent must match
  them;
* with --expect-lost, at least one recovery:packet_lost.

Prints one line per file ("ok FILE: ..." or "FAIL FILE: ...", then the
problems, at most 20) and exits 0 when every file passed, 1 otherwise.
Importable: validate(path) returns (problems, stats).

The schema is written out here by hand, field by field, from
draft-ietf-quic-qlog-main-schema and -quic-events (the 0.3 generation that
qvis reads), with rudp's own frames and states where QUIC's do not fit.
"""

import argparse
import json
import re
import sys

RS = b"\x1e"
HEX16 = re.compile(r"^[0-9a-f]{16}$")

PACKET_TYPES = {"initial", "handshake", "1RTT", "retry", "refuse", "stateless_reset",
                "unknown"}
STREAM_STATES = {"idle", "open", "half_closed_local", "half_closed_remote", "closed",
                 "ready", "send", "data_sent", "reset_sent", "reset_received", "receive",
                 "size_known", "data_read", "reset_read", "data_received", "destroyed"}
RUDP_STREAM_STATES = {"connecting", "syn_received", "established", "closing", "fin_wait",
                      "last_ack", "closed", "reset", "freed"}
CONN_STATES = {"attempted", "handshake_complete", "closing", "draining", "closed"}
CC_STATES = {"slow_start", "congestion_avoidance", "recovery", "startup", "drain",
             "probe_bw", "probe_rtt"}
DROP_TRIGGERS = {"internal_error", "rejected", "unsupported", "invalid",
                 "connection_unknown", "decryption_failure", "general"}
CLOSE_TRIGGERS = {"clean", "handshake_timeout", "idle_timeout", "error", "stateless_reset",
                  "version_mismatch", "application"}
SUMMARY = ("pkts_sent", "pkts_recv", "pkts_lost", "pkts_spurious", "pkts_dropped",
           "bytes_sent", "bytes_recv", "stream_bytes_sent", "pto_count_total", "migrations",
           "records_dropped")


class Problems(list):
    """The problems found in one file, each prefixed with where."""

    def at(self, where, text):
        self.append(f"{where}: {text}")


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def need(p, where, obj, key, check, what):
    """Checks that obj[key] exists and passes |check|; returns it (or None)."""
    if not isinstance(obj, dict) or key not in obj:
        p.at(where, f"missing {key!r}")
        return None
    if not check(obj[key]):
        p.at(where, f"{key!r} is {obj[key]!r}, want {what}")
        return None
    return obj[key]


def opt(p, where, obj, key, check, what):
    """Checks obj[key] when it exists."""
    if isinstance(obj, dict) and key in obj and not check(obj[key]):
        p.at(where, f"{key!r} is {obj[key]!r}, want {what}")


# ------------------------------------------------------------------ framing

def records(data, p):
    """Splits a JSON-SEQ file into parsed records; framing errors go to |p|."""
    if not data.startswith(RS):
        p.at("file", "does not start with RS (0x1e)")
    out = []
    for i, chunk in enumerate(data.split(RS)[1:], 1):
        if not chunk.endswith(b"\n"):
            p.at(f"record {i}", "does not end with LF")
        try:
            obj = json.loads(chunk.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            p.at(f"record {i}", f"not JSON: {e}")
            continue
        if not isinstance(obj, dict):
            p.at(f"record {i}", "not a JSON object")
            continue
        out.append((i, obj))
    return out


def check_header(p, h):
    """Checks the QlogFileSeq header; returns the vantage point type."""
    w = "header"
    need(p, w, h, "qlog_version", lambda v: v == "0.3", '"0.3"')
    need(p, w, h, "qlog_format", lambda v: v == "JSON-SEQ", '"JSON-SEQ"')
    tr = need(p, w, h, "trace", lambda v: isinstance(v, dict), "an object")
    vp = need(p, w, tr, "vantage_point", lambda v: isinstance(v, dict), "an object")
    vt = need(p, w + ".vantage_point", vp, "type", lambda v: v in ("client", "server"),
              "client or server")
    cf = need(p, w, tr, "common_fields", lambda v: isinstance(v, dict), "an object")
    need(p, w + ".common_fields", cf, "time_format", lambda v: v == "relative", '"relative"')
    need(p, w + ".common_fields", cf, "reference_time", lambda v: is_num(v) and v > 0,
         "ms since the epoch")
    need(p, w + ".common_fields", cf, "group_id", lambda v: isinstance(v, str) and
         HEX16.match(v), "16 hex digits")
    return vt


# ------------------------------------------------------------------ frames

def ack_range(r):
    return (isinstance(r, list) and len(r) in (1, 2) and all(is_uint(x) for x in r) and
            r[0] <= r[-1])


FRAME_FIELDS = {
    "padding": [("payload_length", is_uint, "a count")],
    "ping": [],
    "ack": [("ack_delay", lambda v: is_num(v) and v >= 0, "ms"),
            ("acked_ranges", lambda v: isinstance(v, list) and v and all(ack_range(r)
                                                                        for r in v),
             "a list of [low] or [low, high]")],
    "stream": [("stream_id", is_uint, "a stream ID"), ("offset", is_uint, "an offset"),
               ("length", is_uint, "a length")],
    "max_data": [("maximum", is_uint, "bytes")],
    "max_stream_data": [("stream_id", is_uint, "a stream ID"), ("maximum", is_uint, "bytes")],
    "reset_stream": [("stream_id", is_uint, "a stream ID"), ("error_code", is_uint, "a code"),
                     ("final_size", is_uint, "bytes")],
    "connection_close": [("error_code", is_uint, "a code")],
    "max_streams": [("maximum", is_uint, "a count"),
                    ("stream_type", lambda v: v == "bidirectional", "bidirectional")],
    "path_challenge": [("data", lambda v: isinstance(v, str) and HEX16.match(v), "hex")],
    "path_response": [("data", lambda v: isinstance(v, str) and HEX16.match(v), "hex")],
    "session": [("syn", lambda v: v is True, "true"), ("ack", lambda v: isinstance(v, bool),
                                                      "a bool"),
                ("cid", lambda v: isinstance(v, str) and HEX16.match(v), "16 hex digits")],
    "listening": [("listening", lambda v: isinstance(v, bool), "a bool")],
    "new_ticket": [],
}


def check_frames(p, w, frames, only=None):
    """Checks a frames list; returns the stream bytes it carries."""
    if not isinstance(frames, list):
        p.at(w, "'frames' is not a list")
        return 0
    data = 0
    for k, f in enumerate(frames):
        fw = f"{w}.frames[{k}]"
        t = need(p, fw, f, "frame_type", lambda v: v in FRAME_FIELDS, "a frame type rudp sends")
        if t is None:
            continue
        if only and t not in only:
            p.at(fw, f"a {t} frame here, want only {sorted(only)}")
        for key, check, what in FRAME_FIELDS[t]:
            need(p, fw, f, key, check, what)
        if t == "stream":
            for flag in ("fin", "syn", "ack"):
                opt(p, fw, f, flag, lambda v: v is True, "true (or absent)")
            data += f.get("length", 0) if is_uint(f.get("length")) else 0
    return data


# ------------------------------------------------------------------ events

def check_header_obj(p, w, d, numbered=True):
    """Checks data.header; returns the packet type."""
    h = need(p, w, d, "header", lambda v: isinstance(v, dict), "an object")
    t = need(p, w + ".header", h, "packet_type", lambda v: v in PACKET_TYPES, "a packet type")
    if numbered and t in ("initial", "handshake", "1RTT"):
        need(p, w + ".header", h, "packet_number", is_uint, "a packet number")
    opt(p, w + ".header", h, "dcid", lambda v: isinstance(v, str) and HEX16.match(v), "hex")
    return t


def ev_packet(p, w, d, st, kind):
    t = check_header_obj(p, w, d)
    length = need(p, w + ".raw", d.get("raw"), "length", lambda v: is_uint(v) and v > 0,
                  "datagram bytes")
    data = check_frames(p, w, d.get("frames", []))
    opt(p, w, d, "trigger", lambda v: v == "pto_probe", '"pto_probe"')
    opt(p, w, d, "is_mtu_probe_packet", lambda v: v is True, "true")
    if kind == "sent":
        st["sent"] += 1
        st["sent_bytes"] += length or 0
        st["stream_bytes_sent"] += data
    elif t in ("initial", "handshake", "1RTT"):
        st["recv"] += 1


def ev_lost(p, w, d, st):
    check_header_obj(p, w, d)
    check_frames(p, w, d.get("frames", []), only={"stream"})
    need(p, w, d, "trigger", lambda v: v in ("reordering_threshold", "time_threshold"),
         "reordering_threshold or time_threshold")
    st["lost"] += 1


def ev_dropped(p, w, d, st):
    check_header_obj(p, w, d, numbered=False)
    need(p, w + ".raw", d.get("raw"), "length", is_uint, "bytes")
    need(p, w, d, "trigger", lambda v: v in DROP_TRIGGERS, "a drop trigger")
    st["dropped"] += 1


METRICS = {"min_rtt": is_num, "smoothed_rtt": is_num, "latest_rtt": is_num,
           "rtt_variance": is_num, "pto_count": is_uint, "congestion_window": is_uint,
           "bytes_in_flight": is_uint, "ssthresh": is_uint, "pacing_rate": is_uint}


def ev_metrics(p, w, d, st):
    if not d:
        p.at(w, "metrics_updated with no metric")
    for k, v in d.items():
        if k not in METRICS:
            p.at(w, f"unknown metric {k!r}")
        elif not METRICS[k](v) or v < 0:
            p.at(w, f"{k!r} is {v!r}")
    st["metrics"] += 1


def ev_cc(p, w, d, st):
    need(p, w, d, "new", lambda v: v in CC_STATES, "a congestion state")
    opt(p, w, d, "old", lambda v: v in CC_STATES, "a congestion state")
    st["cc"] += 1


def ev_stream(p, w, d, st):
    need(p, w, d, "stream_id", is_uint, "a stream ID")
    need(p, w, d, "new", lambda v: v in STREAM_STATES, "a stream state")
    opt(p, w, d, "old", lambda v: v in STREAM_STATES, "a stream state")
    need(p, w, d, "rudp_state", lambda v: v in RUDP_STREAM_STATES, "an rudp stream state")
    st["streams"] += 1


def ev_conn_state(p, w, d, st):
    need(p, w, d, "new", lambda v: v in CONN_STATES, "a connection state")
    opt(p, w, d, "old", lambda v: v in CONN_STATES, "a connection state")


def ev_closed(p, w, d, st):
    need(p, w, d, "owner", lambda v: v in ("local", "remote"), "local or remote")
    need(p, w, d, "trigger", lambda v: v in CLOSE_TRIGGERS, "a close trigger")
    need(p, w, d, "reason", lambda v: isinstance(v, str), "text")


def ev_started(p, w, d, st):
    for k in ("src_ip", "dst_ip"):
        need(p, w, d, k, lambda v: isinstance(v, str), "an address")
    for k in ("src_port", "dst_port"):
        opt(p, w, d, k, is_uint, "a port")
    need(p, w, d, "ip_version", lambda v: v in ("ipv4", "ipv6"), "ipv4 or ipv6")


def ev_mtu(p, w, d, st):
    need(p, w, d, "new", lambda v: is_uint(v) and v >= 1200, "a packet size")
    opt(p, w, d, "old", is_uint, "a packet size")


def ev_summary(p, w, d, st):
    for k in SUMMARY:
        need(p, w, d, k, is_uint, "a count")
    st["summary"] = d


EVENTS = {
    "transport:packet_sent": lambda p, w, d, st: ev_packet(p, w, d, st, "sent"),
    "transport:packet_received": lambda p, w, d, st: ev_packet(p, w, d, st, "received"),
    "transport:packet_dropped": ev_dropped,
    "transport:stream_state_updated": ev_stream,
    "recovery:packet_lost": ev_lost,
    "recovery:metrics_updated": ev_metrics,
    "recovery:congestion_state_updated": ev_cc,
    "connectivity:connection_started": ev_started,
    "connectivity:connection_state_updated": ev_conn_state,
    "connectivity:connection_closed": ev_closed,
    "connectivity:mtu_updated": ev_mtu,
    "rudp:session_summary": ev_summary,
}


def check_event(p, i, e, st):
    """Checks one event record (time, name, data)."""
    w = f"record {i}"
    t = need(p, w, e, "time", lambda v: is_num(v) and v >= 0, "ms (a number >= 0)")
    name = need(p, w, e, "name", lambda v: isinstance(v, str) and ":" in v, "category:type")
    d = need(p, w, e, "data", lambda v: isinstance(v, dict), "an object")
    if t is not None:
        if t < st["last_time"]:
            p.at(w, f"time {t} before the previous event's {st['last_time']}")
        st["last_time"] = max(st["last_time"], t)
    if name is None or d is None:
        return
    if name not in EVENTS:
        p.at(w, f"unknown event {name!r}")
        return
    st["names"][name] = st["names"].get(name, 0) + 1
    EVENTS[name](p, f"{w} ({name})", d, st)


def check_counts(p, st):
    """Compares the events with the session's own counters."""
    s = st.get("summary")
    if s is None:
        p.at("file", "no rudp:session_summary record (the trace did not end)")
        return
    for ours, theirs in (("sent", "pkts_sent"), ("sent_bytes", "bytes_sent"),
                         ("recv", "pkts_recv"), ("lost", "pkts_lost"),
                         ("stream_bytes_sent", "stream_bytes_sent")):
        if st[ours] != s.get(theirs):
            p.at("counts", f"{st[ours]} {ours} in the events, the session says "
                           f"{theirs} {s.get(theirs)}")


def validate(path, expect_lost=False):
    """Returns (problems, stats) for the qlog file at |path|."""
    p = Problems()
    st = {"sent": 0, "sent_bytes": 0, "recv": 0, "lost": 0, "dropped": 0, "metrics": 0,
          "cc": 0, "streams": 0, "stream_bytes_sent": 0, "last_time": 0.0, "names": {},
          "records": 0, "vantage": None}
    with open(path, "rb") as f:
        recs = records(f.read(), p)
    st["records"] = len(recs)
    if not recs:
        p.at("file", "no record")
        return p, st
    st["vantage"] = check_header(p, recs[0][1])
    for i, e in recs[1:]:
        check_event(p, i, e, st)
    check_counts(p, st)
    if expect_lost and st["lost"] == 0:
        p.at("file", "no recovery:packet_lost on a lossy path")
    return p, st


def main(argv):
    ap = argparse.ArgumentParser(description="check rudp qlog files")
    ap.add_argument("--expect-lost", action="store_true", help="require packet_lost events")
    ap.add_argument("--quiet", action="store_true", help="print failures only")
    ap.add_argument("files", nargs="+")
    args = ap.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            problems, st = validate(path, args.expect_lost)
        except OSError as e:
            problems, st = [f"cannot read: {e}"], {}
        if problems:
            failed += 1
            print(f"FAIL {path}: {len(problems)} problems")
            for line in problems[:20]:
                print(f"    {line}")
        elif not args.quiet:
            print(f"ok {path}: {st['vantage']}, {st['records']} records, {st['sent']} sent, "
                  f"{st['recv']} received, {st['lost']} lost, {st['dropped']} dropped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
