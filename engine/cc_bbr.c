/*
 * cc_bbr.c — BBR congestion control, version 1, after
 * draft-cardwell-iccrg-bbr-congestion-control-00 and the BBR paper
 * (Cardwell et al., "BBR: Congestion-Based Congestion Control", 2016), in
 * the shape of Linux's tcp_bbr.c.
 *
 * BBR models the path with two numbers: BtlBw, the bottleneck bandwidth,
 * the maximum delivery rate (rate.c) seen over the last 10 packet-timed
 * round trips, and RTprop, the round-trip propagation time, the minimum RTT
 * seen over the last 10 seconds.  It paces at pacing_gain * BtlBw and caps
 * the flight at cwnd_gain * BtlBw * RTprop (the BDP) plus three send quanta.
 * Rounds are counted with the delivered count: a round ends when a packet
 * sent after the previous round ended is acknowledged.
 *
 * The state machine (draft §4.3):
 *   - Startup: pacing gain 2/ln 2, doubling the delivery rate every round,
 *     with the window at twice the estimated BDP (as BBRv3; v1's 2/ln 2 lets
 *     Startup queue two BDPs more than the pipe holds), until BtlBw has grown
 *     less than 25 % for three rounds, or a round begins with every RTT
 *     clearly above RTprop (HyStart++'s delay test): the pipe is full.
 *     App-limited rounds do not count.
 *   - Drain: pacing gain ln 2 / 2 until the flight is down to one BDP.
 *   - ProbeBW: cwnd gain 2 and a pacing gain cycling through 1.25, 0.75
 *     and six phases of 1, each about one RTprop long; the 1.25 phase ends
 *     only once the flight reached 1.25 BDP or a loss was seen, the 0.75
 *     phase as soon as the flight is down to one BDP.  The cycle starts at
 *     a pseudo-random phase other than 0.75.
 *   - ProbeRTT: when RTprop has not been refreshed for 10 s, the window
 *     drops to half the BDP (at least 4 packets; BBRv3's ProbeRTT, where
 *     v1 went down to 4 packets) for 200 ms and at least one round, then
 *     the saved window comes back and the machine returns to ProbeBW (or
 *     Startup).  Half a BDP drains the queue a flow keeps when it has the
 *     link to itself (ProbeBW's window is 2 BDP, its 0.75 phase empties the
 *     rest) and keeps half the rate: at 200 ms RTT, 4 packets idled the
 *     link for about 0.4 s in every 10.
 *
 * Rate samples from application-limited periods update BtlBw only when they
 * exceed it, so an idle or slow application never lowers the estimate.
 *
 * Loss.  BBR does not treat loss as a signal to cut its rate: random loss
 * leaves pacing and BtlBw alone (no multiplicative decrease).  Loss that
 * comes with a standing queue — the smallest RTT of the last round more
 * than RTprop / 4 above RTprop, so the buffer did not drain for a whole
 * round — is congestion, and gets the draft's recovery (§4.2.3.4): the
 * window is saved, set to the flight plus the newly delivered bytes, kept
 * there by packet conservation for one round and reduced by the bytes lost
 * meanwhile; the saved window comes back when the recovery period ends (a
 * packet sent after it began is acknowledged).  Persistent congestion
 * (RFC 9002 §7.6, the RTO of the draft) saves the window and collapses it
 * to the minimum; it grows back by the delivered bytes and the saved window
 * is restored when the period ends.
 *
 * Random-loss compensation.  Delivery-rate samples count only delivered
 * bytes, so on a path that drops a fraction p of the packets after the
 * bottleneck BtlBw settles at (1 - p) times the bottleneck, and pacing at
 * it would leave that fraction of the link idle.  In ProbeBW, while no
 * standing queue is seen, the bandwidth BBR paces and sizes its window with
 * is BtlBw / (1 - p), p being a moving average (weight 1/4) of the
 * per-round loss fraction, at most 20 %.  When the compensation overshoots
 * the link, the queue it builds stands for a round and turns it off, and
 * since a competing loss-based flow keeps the queue standing too, BBR is
 * then plain BBRv1.
 */
#include <stddef.h>

#include "cc.h"

#define BBR_HIGH_GAIN 2.88539008177792681 /* 2 / ln 2 */
#define BBR_CWND_GAIN 2.0
#define BBR_STARTUP_CWND_GAIN 2.0
#define BBR_BW_WINDOW 10 /* rounds of the BtlBw filter */
#define BBR_RTPROP_WINDOW RUDP_SEC(10)
#define BBR_PROBE_RTT_TIME RUDP_MS(200)
#define BBR_MIN_PIPE_PKTS 4
#define BBR_PROBE_RTT_CWND_GAIN 0.5
#define BBR_CYCLE_LEN 8
#define BBR_FULL_BW_ROUNDS 3
#define BBR_STARTUP_RTT_SAMPLES 8      /* RTTs a round needs before the delay test */
#define BBR_STARTUP_ETA_MIN RUDP_MS(4) /* bounds of the RTT rise that ends Startup */
#define BBR_STARTUP_ETA_MAX RUDP_MS(16)
#define BBR_LOSS_MAX 0.2 /* largest loss fraction compensated */
#define BBR_LOSS_WEIGHT 0.25
#define BBR_NS_PER_SEC 1e9
#define BBR_RTT_NONE UINT64_MAX

static const double bbr_gain_cycle[BBR_CYCLE_LEN] = {1.25, 0.75, 1, 1, 1, 1, 1, 1};

/* --- the windowed max filter (Kathleen Nichols' algorithm, win_minmax.c) --- */

/* Restarts |m| with the single sample |v| at round |t|; returns v. */
static uint64_t bbr_minmax_reset(rudp_bbr_minmax *m, uint64_t t, uint64_t v) {
    for (int i = 0; i < 3; i++) {
        m->s[i].t = t;
        m->s[i].v = v;
    }
    return v;
}

/* Ages the three samples so that s[0] stays within |win| rounds of round
 * |t| and s[1], s[2] cover the later quarters and half; returns the max. */
static uint64_t bbr_minmax_subwin(rudp_bbr_minmax *m, uint64_t win, uint64_t t,
                                  uint64_t v) {
    uint64_t dt = t - m->s[0].t;

    if (dt > win) {
        m->s[0] = m->s[1];
        m->s[1] = m->s[2];
        m->s[2].t = t;
        m->s[2].v = v;
        if (t - m->s[0].t > win) {
            m->s[0] = m->s[1];
            m->s[1] = m->s[2];
        }
    } else if (m->s[1].t == m->s[0].t && dt > win / 4) {
        m->s[1].t = m->s[2].t = t;
        m->s[1].v = m->s[2].v = v;
    } else if (m->s[2].t == m->s[1].t && dt > win / 2) {
        m->s[2].t = t;
        m->s[2].v = v;
    }
    return m->s[0].v;
}

/* Feeds sample |v| taken at round |t| to the max filter of |win| rounds and
 * returns the windowed maximum. */
static uint64_t bbr_minmax_max(rudp_bbr_minmax *m, uint64_t win, uint64_t t, uint64_t v) {
    if (v >= m->s[0].v || t - m->s[2].t > win)
        return bbr_minmax_reset(m, t, v);
    if (v >= m->s[1].v) {
        m->s[1].t = m->s[2].t = t;
        m->s[1].v = m->s[2].v = v;
    } else if (v >= m->s[2].v) {
        m->s[2].t = t;
        m->s[2].v = v;
    }
    return bbr_minmax_subwin(m, win, t, v);
}

/* --- model --- */

/* Returns the smallest window BBR uses, 4 packets (kMinPipeCwnd). */
static uint64_t bbr_min_pipe(const rudp_cc *cc) {
    return BBR_MIN_PIPE_PKTS * cc->max_datagram;
}

/* Returns ProbeRTT's window: half the BDP, at least 4 packets
 * (BBRProbeRTTCwnd of draft-ietf-ccwg-bbr). */
static uint64_t bbr_probe_rtt_cwnd(const rudp_cc *cc) {
    const rudp_bbr_state *b = &cc->u.bbr;
    uint64_t w;

    if (b->rt_prop == BBR_RTT_NONE)
        return bbr_min_pipe(cc);
    w = (uint64_t)(BBR_PROBE_RTT_CWND_GAIN * (double)b->btl_bw * (double)b->rt_prop /
                   BBR_NS_PER_SEC);
    return w > bbr_min_pipe(cc) ? w : bbr_min_pipe(cc);
}

/* Returns true when the last round's smallest RTT shows a queue that stood
 * the whole round: more than RTprop / 4 above RTprop. */
static bool bbr_queue_standing(const rudp_bbr_state *b) {
    if (b->rt_prop == BBR_RTT_NONE || b->last_round_min_rtt == BBR_RTT_NONE)
        return false;
    return b->last_round_min_rtt > b->rt_prop + b->rt_prop / 4;
}

/* Returns the bandwidth BBR paces and sizes its window with: BtlBw, scaled
 * by 1 / (1 - loss) in ProbeBW while no standing queue is seen. */
static double bbr_bw(const rudp_bbr_state *b) {
    double loss = b->loss_rate < BBR_LOSS_MAX ? b->loss_rate : BBR_LOSS_MAX;

    if (b->mode != RUDP_BBR_PROBE_BW || bbr_queue_standing(b))
        return (double)b->btl_bw;
    return (double)b->btl_bw / (1.0 - loss);
}

/* Returns gain * BDP + 3 send quanta in bytes (BBRInflight), or the initial
 * window before RTprop is known. */
static uint64_t bbr_inflight(const rudp_cc *cc, double gain) {
    const rudp_bbr_state *b = &cc->u.bbr;
    double bdp;

    if (b->rt_prop == BBR_RTT_NONE)
        return rudp_cc_initial_window(cc->max_datagram);
    bdp = bbr_bw(b) * (double)b->rt_prop / BBR_NS_PER_SEC;
    return (uint64_t)(gain * bdp) + 3 * b->send_quantum;
}

/* Returns a pseudo-random number in [0, n) derived from |now| and the round
 * count, so that runs stay deterministic (splitmix64 finaliser). */
static uint32_t bbr_random(const rudp_bbr_state *b, rudp_tstamp now, uint32_t n) {
    uint64_t z = now + b->round_count * 0x9e3779b97f4a7c15ull;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) % n);
}

/* Returns the window to save before recovery or ProbeRTT lower it. */
static uint64_t bbr_save_cwnd(const rudp_cc *cc) {
    const rudp_bbr_state *b = &cc->u.bbr;

    if (!cc->in_recovery && b->mode != RUDP_BBR_PROBE_RTT)
        return cc->cwnd;
    return cc->cwnd > b->prior_cwnd ? cc->cwnd : b->prior_cwnd;
}

/* Brings back the window saved by bbr_save_cwnd. */
static void bbr_restore_cwnd(rudp_cc *cc) {
    if (cc->u.bbr.prior_cwnd > cc->cwnd)
        cc->cwnd = cc->u.bbr.prior_cwnd;
}

/* --- state machine --- */

/* Enters Startup: both gains 2/ln 2. */
static void bbr_enter_startup(rudp_bbr_state *b) {
    b->mode = RUDP_BBR_STARTUP;
    b->pacing_gain = BBR_HIGH_GAIN;
    b->cwnd_gain = BBR_STARTUP_CWND_GAIN;
}

/* Moves to the next ProbeBW phase at |now|. */
static void bbr_advance_cycle(rudp_bbr_state *b, rudp_tstamp now) {
    b->cycle_stamp = now;
    b->cycle_index = (uint8_t)((b->cycle_index + 1) % BBR_CYCLE_LEN);
    b->pacing_gain = bbr_gain_cycle[b->cycle_index];
}

/* Enters ProbeBW at a random phase other than 0.75 (draft §4.3.4.3). */
static void bbr_enter_probe_bw(rudp_bbr_state *b, rudp_tstamp now) {
    b->mode = RUDP_BBR_PROBE_BW;
    b->cwnd_gain = BBR_CWND_GAIN;
    b->cycle_index = (uint8_t)(BBR_CYCLE_LEN - 1 - bbr_random(b, now, BBR_CYCLE_LEN - 1));
    bbr_advance_cycle(b, now);
}

/* Counts packet-timed rounds (draft §4.1.1.3), ends packet conservation
 * with the round that started it, and closes the round's loss fraction and
 * smallest RTT. */
static void bbr_update_round(rudp_cc *cc, const rudp_rate *rate, rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;
    const rudp_rate_sample *rs = &rate->rs;
    uint64_t delivered, total;

    b->round_start = false;
    if (!rs->has_prior || rs->prior_delivered < b->next_round_delivered) {
        b->round_app_limited |= rs->is_app_limited;
        return;
    }
    b->next_round_delivered = rate->delivered;
    b->round_count++;
    b->round_start = true;
    b->packet_conservation = false;
    delivered = rate->delivered - b->round_start_delivered;
    total = delivered + b->round_lost;
    if (total > 0)
        b->loss_rate +=
            BBR_LOSS_WEIGHT * ((double)b->round_lost / (double)total - b->loss_rate);
    b->round_rate = 0;
    if (now > b->round_start_time)
        b->round_rate = (uint64_t)((double)delivered * BBR_NS_PER_SEC /
                                   (double)(now - b->round_start_time));
    b->round_had_loss = b->round_lost > 0;
    b->round_lost = 0;
    b->round_start_delivered = rate->delivered;
    b->round_start_time = now;
    b->last_round_min_rtt = b->round_min_rtt;
    b->round_min_rtt = BBR_RTT_NONE;
    b->round_rtt_samples = 0;
    b->last_round_app_limited = b->round_app_limited;
    b->round_app_limited = rs->is_app_limited;
}

/* Feeds a valid sample to the BtlBw filter; an app-limited one only when it
 * exceeds the estimate (draft §4.1.1.5). */
static void bbr_update_btl_bw(rudp_bbr_state *b, const rudp_rate_sample *rs) {
    if (!rs->valid)
        return;
    if (rs->delivery_rate >= b->btl_bw || !rs->is_app_limited)
        b->btl_bw =
            bbr_minmax_max(&b->bw_filter, BBR_BW_WINDOW, b->round_count, rs->delivery_rate);
}

/* In ProbeBW, a queue that stood for the whole last round means BtlBw is
 * too high (two-way traffic compresses ACKs and inflates samples): the
 * filter restarts from the round's delivery rate when that is lower. */
static void bbr_check_standing_queue(rudp_bbr_state *b) {
    if (b->mode != RUDP_BBR_PROBE_BW || !b->round_start || !bbr_queue_standing(b))
        return;
    if (b->round_rate > 0 && b->round_rate < b->btl_bw)
        b->btl_bw = bbr_minmax_reset(&b->bw_filter, b->round_count, b->round_rate);
}

/* Returns true when the ProbeBW phase should end (BBRIsNextCyclePhase). */
static bool bbr_is_next_phase(const rudp_cc *cc, const rudp_rate_sample *rs,
                              rudp_tstamp now) {
    const rudp_bbr_state *b = &cc->u.bbr;
    bool full = now - b->cycle_stamp > b->rt_prop;

    if (b->pacing_gain > 1.0)
        return full && (rs->lost_bytes > 0 ||
                        rs->prior_in_flight >= bbr_inflight(cc, b->pacing_gain));
    if (b->pacing_gain < 1.0)
        return full || rs->prior_in_flight <= bbr_inflight(cc, 1.0);
    return full;
}

/* Sets filled_pipe once BtlBw grew less than 25 % in three non-app-limited
 * rounds (draft §4.3.2.2).  A round counts as app-limited when any of its
 * samples was, not only the one that ends it: a request/response flow
 * paces its small bursts, and the packets sent after the first ACK of a
 * burst cleared the app-limited mark measured the pacing, not the path
 * (nginx on loopback left Startup at 0.7 MB/s). */
static void bbr_check_full_pipe(rudp_bbr_state *b, const rudp_rate_sample *rs) {
    if (b->filled_pipe || !b->round_start || rs->is_app_limited ||
        b->last_round_app_limited)
        return;
    if (b->round_had_loss && bbr_queue_standing(b)) {
        b->filled_pipe = true; /* the buffer overflowed: the pipe is full */
        return;
    }
    if ((double)b->btl_bw >= (double)b->full_bw * 1.25) {
        b->full_bw = b->btl_bw;
        b->full_bw_count = 0;
        return;
    }
    if (++b->full_bw_count >= BBR_FULL_BW_ROUNDS)
        b->filled_pipe = true;
}

/* In Startup, a queue already standing at the start of a round means the
 * pipe is full: the smallest of the round's first BBR_STARTUP_RTT_SAMPLES
 * RTTs is at least rt_prop + clamp(rt_prop / 8, 4 ms, 16 ms) (HyStart++'s
 * test, RFC 9406 §4.2).  Waiting for three rounds without bandwidth growth
 * instead lets the 2/ln 2 gain put up to two more BDPs in the queue, which a
 * buffer of one BDP drops.  A round with an app-limited sample does not
 * count, as for the bandwidth test: a flow that does not fill its window
 * builds no queue, and its RTTs rise for other reasons (a delayed ACK, a
 * descheduled thread).  Counting them took request/response sessions on
 * loopback out of Startup with a bandwidth estimate of a few kB/s, which
 * then paced nginx's responses to a crawl for seconds. */
static void bbr_check_startup_delay(rudp_bbr_state *b) {
    rudp_tstamp eta;

    if (b->filled_pipe || b->mode != RUDP_BBR_STARTUP || b->rt_prop == BBR_RTT_NONE ||
        b->round_rtt_samples < BBR_STARTUP_RTT_SAMPLES || b->round_app_limited)
        return;
    eta = b->rt_prop / 8;
    eta = eta < BBR_STARTUP_ETA_MIN   ? BBR_STARTUP_ETA_MIN
          : eta > BBR_STARTUP_ETA_MAX ? BBR_STARTUP_ETA_MAX
                                      : eta;
    if (b->round_min_rtt >= b->rt_prop + eta)
        b->filled_pipe = true;
}

/* Leaves Startup for Drain once the pipe is full, and Drain for ProbeBW
 * once the flight is down to one BDP (draft §4.3.3). */
static void bbr_check_drain(rudp_cc *cc, uint64_t in_flight, rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;

    if (b->mode == RUDP_BBR_STARTUP && b->filled_pipe) {
        b->mode = RUDP_BBR_DRAIN;
        b->pacing_gain = 1.0 / BBR_HIGH_GAIN;
        b->cwnd_gain = BBR_HIGH_GAIN;
    }
    if (b->mode == RUDP_BBR_DRAIN && in_flight <= bbr_inflight(cc, 1.0))
        bbr_enter_probe_bw(b, now);
}

/* Takes |rtt| into the RTprop filter: a new minimum, or any sample once the
 * estimate is 10 s old (draft §4.1.2.3). */
static void bbr_update_rt_prop(rudp_bbr_state *b, rudp_tstamp rtt, rudp_tstamp now) {
    b->rt_prop_expired =
        b->rt_prop != BBR_RTT_NONE && now > b->rt_prop_stamp + BBR_RTPROP_WINDOW;
    if (rtt == BBR_RTT_NONE)
        return;
    b->round_rtt_samples++;
    if (rtt < b->round_min_rtt)
        b->round_min_rtt = rtt;
    if (rtt <= b->rt_prop || b->rt_prop_expired) {
        b->rt_prop = rtt;
        b->rt_prop_stamp = now;
    }
}

/* Runs ProbeRTT: marks the flow app-limited, arms the 200 ms dwell once the
 * flight is down to ProbeRTT's window, and leaves after it and a full round
 * (draft §4.3.5). */
static void bbr_handle_probe_rtt(rudp_cc *cc, rudp_rate *rate, uint64_t in_flight,
                                 rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;

    rudp_rate_on_app_limited(rate, in_flight);
    if (!b->probe_rtt_armed && in_flight <= bbr_probe_rtt_cwnd(cc)) {
        b->probe_rtt_done = now + BBR_PROBE_RTT_TIME;
        b->probe_rtt_armed = true;
        b->probe_rtt_round_done = false;
        b->next_round_delivered = rate->delivered;
    } else if (b->probe_rtt_armed) {
        if (b->round_start)
            b->probe_rtt_round_done = true;
        if (b->probe_rtt_round_done && now > b->probe_rtt_done) {
            b->rt_prop_stamp = now;
            bbr_restore_cwnd(cc);
            if (b->filled_pipe)
                bbr_enter_probe_bw(b, now);
            else
                bbr_enter_startup(b);
        }
    }
}

/* Enters ProbeRTT when RTprop has expired, and runs it. */
static void bbr_check_probe_rtt(rudp_cc *cc, rudp_rate *rate, uint64_t in_flight,
                                rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;

    if (b->mode != RUDP_BBR_PROBE_RTT && b->rt_prop_expired) {
        b->prior_cwnd = bbr_save_cwnd(cc);
        b->mode = RUDP_BBR_PROBE_RTT;
        b->pacing_gain = 1.0;
        b->cwnd_gain = 1.0;
        b->probe_rtt_armed = false;
    }
    if (b->mode == RUDP_BBR_PROBE_RTT)
        bbr_handle_probe_rtt(cc, rate, in_flight, now);
}

/* --- control --- */

/* Paces at pacing_gain times the bandwidth; before the pipe is full the
 * rate never goes down (BBRSetPacingRateWithGain).  The rate starts at
 * 2/ln 2 * cwnd / srtt as soon as an RTT is known (BBRInitPacingRate), so
 * the first, tiny delivery-rate samples (a handshake, an app-limited
 * request) cannot pace a fresh session down to a trickle. */
static void bbr_set_pacing_rate(rudp_cc *cc, const rudp_rtt *rtt) {
    rudp_bbr_state *b = &cc->u.bbr;
    double rate;

    if (b->pacing_rate == 0 && rtt->has_sample && rtt->smoothed > 0)
        b->pacing_rate = (uint64_t)(BBR_HIGH_GAIN * (double)cc->cwnd * BBR_NS_PER_SEC /
                                    (double)rtt->smoothed);
    if (b->btl_bw == 0)
        return;
    rate = b->pacing_gain * bbr_bw(b);
    if (b->filled_pipe || rate > (double)b->pacing_rate)
        b->pacing_rate = rate >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)rate;
}

/* Sets the send quantum from the pacing rate (draft §4.2.2). */
static void bbr_set_send_quantum(rudp_cc *cc) {
    rudp_bbr_state *b = &cc->u.bbr;
    uint64_t q = b->pacing_rate / 1000; /* one millisecond of data */

    if (b->pacing_rate < 150000)
        b->send_quantum = cc->max_datagram;
    else if (b->pacing_rate < 3000000)
        b->send_quantum = 2 * cc->max_datagram;
    else
        b->send_quantum = q < 65536 ? q : 65536;
}

/* Ends the recovery period once a packet sent after it began is
 * acknowledged (restoring the saved window); inside it, subtracts lost
 * bytes and applies packet conservation (draft §4.2.3.4).  Returns true
 * while packet conservation holds the window. */
static bool bbr_modulate_for_recovery(rudp_cc *cc, const rudp_rate *rate,
                                      uint64_t in_flight) {
    rudp_bbr_state *b = &cc->u.bbr;
    const rudp_rate_sample *rs = &rate->rs;
    uint64_t acked =
        rs->acked_bytes > cc->max_datagram ? rs->acked_bytes : cc->max_datagram;

    if (!cc->in_recovery)
        return false;
    if (rs->has_prior && rs->last_sent_time > cc->recovery_start) {
        cc->in_recovery = false;
        b->packet_conservation = false;
        b->recovery_pending = false;
        bbr_restore_cwnd(cc);
        return false;
    }
    if (rs->lost_bytes > 0)
        cc->cwnd = cc->cwnd > rs->lost_bytes + cc->max_datagram ? cc->cwnd - rs->lost_bytes
                                                                : cc->max_datagram;
    if (b->recovery_pending) {
        b->recovery_pending = false;
        b->packet_conservation = true;
        b->next_round_delivered = rate->delivered;
        cc->cwnd = in_flight + acked;
    }
    if (b->packet_conservation && cc->cwnd < in_flight + rs->acked_bytes)
        cc->cwnd = in_flight + rs->acked_bytes;
    return b->packet_conservation;
}

/* Sets the window: towards cwnd_gain * BDP + quanta by the delivered bytes,
 * at least 4 packets, 4 packets in ProbeRTT (BBRSetCwnd). */
static void bbr_set_cwnd(rudp_cc *cc, const rudp_rate *rate, uint64_t in_flight) {
    rudp_bbr_state *b = &cc->u.bbr;
    uint64_t target = bbr_inflight(cc, b->cwnd_gain), acked = rate->rs.acked_bytes;

    if (!bbr_modulate_for_recovery(cc, rate, in_flight)) {
        if (b->filled_pipe)
            cc->cwnd = cc->cwnd + acked < target ? cc->cwnd + acked : target;
        else if (cc->cwnd < target ||
                 rate->delivered < rudp_cc_initial_window(cc->max_datagram))
            cc->cwnd += acked;
        if (cc->cwnd < bbr_min_pipe(cc))
            cc->cwnd = bbr_min_pipe(cc);
    }
    if (b->mode == RUDP_BBR_PROBE_RTT && cc->cwnd > bbr_probe_rtt_cwnd(cc))
        cc->cwnd = bbr_probe_rtt_cwnd(cc);
}

/* --- hooks --- */

/* Starts in Startup with the initial window and no model. */
static void bbr_init(rudp_cc *cc, rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;
    rudp_bbr_state zero = {0};

    *b = zero;
    cc->cwnd = rudp_cc_initial_window(cc->max_datagram);
    cc->in_recovery = false;
    b->rt_prop = BBR_RTT_NONE;
    b->rt_prop_stamp = now;
    b->round_min_rtt = BBR_RTT_NONE;
    b->last_round_min_rtt = BBR_RTT_NONE;
    b->send_quantum = 2 * cc->max_datagram;
    bbr_enter_startup(b);
}

/* Per-packet acknowledgement: BBR works on the whole ACK's sample. */
static void bbr_on_ack(rudp_cc *cc, uint64_t bytes, rudp_tstamp sent_time,
                       const rudp_rtt *rtt, rudp_tstamp now) {
    (void)cc, (void)bytes, (void)sent_time, (void)rtt, (void)now;
}

/* Runs the model and the control for one ACK (BBRUpdateOnACK). */
static void bbr_on_ack_sample(rudp_cc *cc, rudp_rate *rate, uint64_t in_flight,
                              const rudp_rtt *rtt, rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;
    const rudp_rate_sample *rs = &rate->rs;
    rudp_tstamp sample = BBR_RTT_NONE;

    if (rs->has_prior)
        sample = now > rs->last_sent_time ? now - rs->last_sent_time : 0;
    b->round_lost += rs->lost_bytes;
    bbr_update_round(cc, rate, now);
    bbr_update_btl_bw(b, rs);
    bbr_check_standing_queue(b);
    if (b->mode == RUDP_BBR_PROBE_BW && bbr_is_next_phase(cc, rs, now))
        bbr_advance_cycle(b, now);
    bbr_check_full_pipe(b, rs);
    bbr_check_drain(cc, in_flight, now);
    bbr_update_rt_prop(b, sample, now);
    bbr_check_startup_delay(b);
    bbr_check_probe_rtt(cc, rate, in_flight, now);
    bbr_set_pacing_rate(cc, rtt);
    bbr_set_send_quantum(cc);
    bbr_set_cwnd(cc, rate, in_flight);
}

/* A loss in a packet sent at |sent_time|.  Outside a recovery period and
 * with a standing queue (congestion, not random loss) it starts one at
 * |now|: the window is saved and packet conservation takes over at the next
 * ACK.  Random loss changes nothing. */
static void bbr_on_congestion(rudp_cc *cc, rudp_tstamp sent_time, const rudp_rtt *rtt,
                              rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;

    (void)rtt;
    if (cc->recovery_start != RUDP_TSTAMP_NEVER && sent_time <= cc->recovery_start)
        return;
    if (!bbr_queue_standing(b))
        return;
    b->prior_cwnd = bbr_save_cwnd(cc);
    cc->recovery_start = now;
    cc->in_recovery = true;
    b->recovery_pending = true;
}

/* Persistent congestion (the draft's RTO): saves the window, collapses it to
 * the minimum and opens a recovery period at |now| that restores the saved
 * window when it ends. */
static void bbr_on_persistent_congestion(rudp_cc *cc, rudp_tstamp now) {
    rudp_bbr_state *b = &cc->u.bbr;

    b->prior_cwnd = bbr_save_cwnd(cc);
    cc->cwnd = rudp_cc_min_window(cc->max_datagram);
    cc->recovery_start = now;
    cc->in_recovery = true;
    b->recovery_pending = false;
    b->packet_conservation = false;
}

/* Returns BBR's pacing rate; before the first ACK, 2/ln 2 * cwnd / srtt
 * once an RTT is known, else 0 (unpaced). */
static uint64_t bbr_pacing_rate(const rudp_cc *cc, const rudp_rtt *rtt) {
    if (cc->u.bbr.pacing_rate > 0)
        return cc->u.bbr.pacing_rate;
    if (!rtt->has_sample || rtt->smoothed == 0)
        return 0;
    return (uint64_t)(BBR_HIGH_GAIN * (double)cc->cwnd * BBR_NS_PER_SEC /
                      (double)rtt->smoothed);
}

const rudp_cc_ops rudp_cc_bbr_ops = {
    .name = "bbr",
    .init = bbr_init,
    .on_ack = bbr_on_ack,
    .on_congestion = bbr_on_congestion,
    .on_persistent_congestion = bbr_on_persistent_congestion,
    .on_ack_sample = bbr_on_ack_sample,
    .pacing_rate = bbr_pacing_rate,
};
