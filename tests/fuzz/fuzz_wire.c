/*
 * fuzz_wire.c — libFuzzer target for the packet and frame decoders.
 *
 * Every input is parsed as a datagram's clear header (and what follows it
 * decoded as frames, as if it had opened) and, separately, as a frame area; each decoded
 * frame is re-encoded and decoded again, and must come back identical in length.  Any
 * crash, over-read (ASan) or mismatch fails.
 */
#include <stdlib.h>
#include <string.h>

#include "wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Decodes every frame of |p| and checks each re-encodes to the same size. */
static void fuzz_frames(const uint8_t *p, size_t len) {
    uint8_t out[70000];
    while (len > 0) {
        rudp_frame f;
        ssize_t n = rudp_wire_decode_frame(p, len, &f);
        if (n <= 0)
            return;
        if (f.type != RUDP_FRAME_PADDING) {
            ssize_t m = rudp_wire_encode_frame(out, sizeof(out), &f);
            if (f.type != RUDP_FRAME_ACK && m != n)
                abort();
            rudp_frame g;
            if (m > 0 && rudp_wire_decode_frame(out, (size_t)m, &g) != m)
                abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees over-reads */
    memcpy(copy, data, size);
    rudp_pkt_hdr hdr;
    if (rudp_wire_parse(copy, size, &hdr) == RUDP_OK && hdr.len <= size)
        fuzz_frames(copy + hdr.len, size - hdr.len);
    fuzz_frames(copy, size);
    free(copy);
    return 0;
}
