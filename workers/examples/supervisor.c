/*
 * supervisor: restart a child that crashes, Erlang style.
 *
 *   lunatic-mp run --workers 2 workers/build/supervisor.wasm -- [crashes] [max_restarts]
 *
 * The root process is a supervisor: it turns its links' failures into messages
 * (die_when_link_dies(0)) and spawns a linked child, tagging the link with the child's attempt
 * number. The child works out a result (a sum of squares), but its first `crashes` (2) attempts
 * trap first. Each crash reaches the supervisor as a LinkDied message (a normal exit sends
 * nothing over the link, as in lunatic 0.13), and it starts a new child, up to `max_restarts`
 * (3) times; then it gives up and exits with status 1.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lunatic.h"

#define RESULT 1 /* the tag of a child's answer */

/* A child: attempt number, how many attempts crash, and whom to answer. */
__attribute__((export_name("child"))) void child(int64_t attempt, int64_t crashes, uint64_t supervisor) {
    uint64_t sum = 0;
    for (uint64_t i = 1; i <= 1000; i++) sum += i * i;
    if (attempt <= crashes) __builtin_trap(); /* a bug: the process dies with a trap */
    lm_send(supervisor, RESULT, &sum, sizeof sum);
}

static int start_child(int64_t attempt, int64_t crashes) {
    lm_params params = {0};
    lm_param_i64(lm_param_i64(lm_param_i64(&params, attempt), crashes), (int64_t)lm_self());
    uint64_t pid;
    if (lm_spawn_link(attempt, "child", &params, &pid) != LM_OK) {
        fprintf(stderr, "supervisor: spawn failed: %s\n", lm_last_error());
        return 0;
    }
    printf("supervisor: started child attempt %lld\n", (long long)attempt);
    return 1;
}

int main(int argc, char **argv) {
    int64_t crashes = argc > 1 ? atoll(argv[1]) : 2;
    int64_t max_restarts = argc > 2 ? atoll(argv[2]) : 3;
    lm_die_when_link_dies(0); /* a linked child's failure arrives as a message */
    int64_t attempt = 1;
    if (!start_child(attempt, crashes)) return 1;
    for (;;) {
        lm_message msg;
        uint64_t sum = 0;
        int32_t kind = lm_receive_into(&msg, &sum, sizeof sum, NULL, 0, LM_FOREVER);
        if (kind == LM_DATA && msg.tag == RESULT) {
            printf("supervisor: child attempt %lld answered %llu after %lld restart(s)\n", (long long)attempt,
                   (unsigned long long)sum, (long long)(attempt - 1));
            return 0;
        }
        if (kind != LM_LINK_DIED) continue;
        printf("supervisor: child attempt %lld crashed\n", (long long)msg.tag);
        if (attempt - 1 >= max_restarts) {
            printf("supervisor: giving up after %lld restart(s)\n", (long long)max_restarts);
            return 1;
        }
        if (!start_child(++attempt, crashes)) return 1;
    }
}
