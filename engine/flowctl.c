/*
 * flowctl.c — receive windows and their auto-tuning.
 *
 * The limit only ever grows.  An update is due when the application has
 * consumed at least half a window beyond what the last limit allowed for,
 * i.e. consumed + window - limit >= window / 2.  If the previous raise was
 * less than 2 * srtt ago, the peer is sending a window per round trip and
 * the window, not the path, is the bottleneck: quadruple it (up to the
 * ceiling) before computing the new limit.  Fourfold rather than twofold:
 * a 256 KiB window reaches a 100 Mbit/s x 40 ms path's 1 MB within two
 * raises, where doubling left a lossy transfer window-bound for seconds.
 *
 * That rule needs two raises, and the first raise of a stream comes late:
 * a sender in slow start takes several rounds to send half a window, so it
 * is never within 2 * srtt of the stream's start.  So the consumption rate
 * is also sampled over periods of at least one srtt, and the window kept
 * at eight times the bytes consumed per srtt: twice for the next round
 * (slow start doubles), twice for the round the sample lags the sender by
 * (the bytes reach the receiver and the raise the sender half a round
 * late each), twice because a raise only comes once half the window is
 * consumed.  At 200 ms RTT and 100 Mbit/s, a 256 KiB window stalled a new
 * stream for a round at 1.4 s, and the session window then held it until
 * 1.9 s; now both keep ahead of slow start (docs/BENCHMARKS.md, issue 14).
 */
#include "flowctl.h"

void rudp_fc_init(rudp_fc *fc, uint64_t window, uint64_t max_window, rudp_tstamp now) {
    fc->consumed = 0;
    fc->highest = 0;
    fc->limit = window;
    fc->window = window;
    fc->max_window = max_window < window ? window : max_window;
    fc->last_update = now;
    fc->rate_mark = now;
    fc->rate_consumed = 0;
    fc->update_pending = false;
}

int rudp_fc_on_recv(rudp_fc *fc, uint64_t end) {
    if (end > fc->limit)
        return RUDP_ERR_FLOW_CONTROL;
    if (end > fc->highest)
        fc->highest = end;
    return RUDP_OK;
}

/* Sets the window to |want| when that is larger, up to the ceiling. */
static void fc_grow(rudp_fc *fc, uint64_t want) {
    if (want > fc->max_window)
        want = fc->max_window;
    if (want > fc->window)
        fc->window = want;
}

/* Closes a consumption sample once it spans at least |srtt| and keeps the
 * window at 8 times the bytes consumed per srtt in it. */
static void fc_sample_rate(rudp_fc *fc, rudp_tstamp srtt, rudp_tstamp now) {
    rudp_tstamp span = now - fc->rate_mark;
    double per_rtt;

    if (srtt == 0 || now < fc->rate_mark || span < srtt)
        return;
    per_rtt = (double)(fc->consumed - fc->rate_consumed) * (double)srtt / (double)span;
    if (per_rtt * 8 < (double)UINT64_MAX / 2)
        fc_grow(fc, (uint64_t)(per_rtt * 8));
    fc->rate_mark = now;
    fc->rate_consumed = fc->consumed;
}

bool rudp_fc_on_consume(rudp_fc *fc, uint64_t n, rudp_tstamp srtt, rudp_tstamp now) {
    fc->consumed += n;
    fc_sample_rate(fc, srtt, now);
    if (fc->consumed + fc->window - fc->limit < fc->window / 2)
        return false;
    if (srtt > 0 && now - fc->last_update < 2 * srtt)
        fc_grow(fc, fc->window * 4);
    fc->limit = fc->consumed + fc->window;
    fc->last_update = now;
    fc->update_pending = true;
    return true;
}
