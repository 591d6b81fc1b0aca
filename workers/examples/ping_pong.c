/*
 * ping_pong: request/reply between processes, across workers.
 *
 *   lunatic-mp run --workers 2 workers/build/ping_pong.wasm -- [rounds] [players]
 *
 * The root process spawns `players` pong processes (2 by default; the runtime places them on
 * its workers round robin) and plays `rounds` (1000) requests with each in turn: the ball is a
 * counter that the pong process increments and sends back. A message tagged STOP ends a pong.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lunatic.h"

#define STOP 1

/* A pong process: answer every request with its counter plus one, until STOP. */
__attribute__((export_name("pong"))) void pong(void) {
    for (;;) {
        lm_message request;
        uint64_t ball = 0;
        lm_receive_into(&request, &ball, sizeof ball, NULL, 0, LM_FOREVER);
        if (request.tag == STOP) return;
        ball += 1;
        lm_reply(&request, &ball, sizeof ball);
    }
}

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
    long rounds = argc > 1 ? atol(argv[1]) : 1000;
    long players = argc > 2 ? atol(argv[2]) : 2;
    if (rounds < 1 || players < 1) {
        fprintf(stderr, "usage: ping_pong [rounds >= 1] [players >= 1]\n");
        return 2;
    }
    printf("ping on worker %u\n", lm_worker_of(lm_self()));
    for (long p = 1; p <= players; p++) {
        uint64_t partner;
        if (lm_spawn("pong", NULL, &partner) != LM_OK) {
            fprintf(stderr, "ping_pong: spawn failed: %s\n", lm_last_error());
            return 1;
        }
        uint64_t ball = 0;
        double start = now_us();
        for (long r = 0; r < rounds; r++) {
            lm_message reply;
            if (lm_request(partner, &ball, sizeof ball, &reply, &ball, sizeof ball, 10000) != LM_OK) {
                fprintf(stderr, "ping_pong: pong %ld did not answer\n", p);
                return 1;
            }
        }
        double elapsed = now_us() - start;
        lm_send(partner, STOP, NULL, 0);
        printf("pong %ld on worker %u: %ld round trips, ball at %llu, %.1f us per round trip\n", p,
               lm_worker_of(partner), rounds, (unsigned long long)ball, elapsed / rounds);
    }
    return 0;
}
