/*
 * flowctl.h — receive-side flow control with window auto-tuning.
 *
 * One rudp_fc guards a stream's receive buffer, another the whole session's.
 * The receiver advertises an absolute limit (the highest offset the peer may
 * send); as the application consumes bytes the limit is raised to
 * consumed + window once the increment reaches half the window (yamux's
 * rule), which bounds WINDOW_UPDATE traffic.  Auto-tuning (as in Chromium's
 * QUIC and Linux's tcp_rcv_space_adjust): when two updates come less than
 * two smoothed RTTs apart, the window is what limits the sender, so it is
 * quadrupled, up to max_window.  Besides, once per smoothed RTT the window
 * is raised to eight times what the application consumed in the last RTT
 * (Linux's receive-buffer auto-tuning in spirit), so a sender in slow start,
 * doubling every round, finds the window ahead of it from the first raise.
 */
#ifndef RUDP_FLOWCTL_H
#define RUDP_FLOWCTL_H

#include "rudp/rudp.h"

typedef struct rudp_fc {
    uint64_t consumed;       /* bytes taken by the application (or discarded) */
    uint64_t highest;        /* highest offset (or total) received */
    uint64_t limit;          /* limit advertised to the peer */
    uint64_t window;         /* current window size */
    uint64_t max_window;     /* auto-tuning ceiling */
    rudp_tstamp last_update; /* when the limit was last raised */
    rudp_tstamp rate_mark;   /* start of the current consumption sample */
    uint64_t rate_consumed;  /* consumed at rate_mark */
    bool update_pending;     /* a WINDOW_UPDATE should be sent */
} rudp_fc;

void rudp_fc_init(rudp_fc *fc, uint64_t window, uint64_t max_window, rudp_tstamp now);

/* The peer sent bytes up to |end| (absolute).  Returns RUDP_OK or
 * RUDP_ERR_FLOW_CONTROL when |end| exceeds the advertised limit. */
int rudp_fc_on_recv(rudp_fc *fc, uint64_t end);

/* The application consumed |n| more bytes at |now|; raises the limit (and
 * sets update_pending) when due, auto-tuning the window against |srtt|.
 * Returns true when the limit was raised. */
bool rudp_fc_on_consume(rudp_fc *fc, uint64_t n, rudp_tstamp srtt, rudp_tstamp now);

#endif /* RUDP_FLOWCTL_H */
