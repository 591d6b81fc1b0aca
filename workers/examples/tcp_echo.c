/*
 * tcp_echo: a TCP echo server with a process per connection, spread over the workers.
 *
 *   lunatic-mp run --workers 2 workers/build/tcp_echo.wasm -- [port] [max]
 *   nc 127.0.0.1 PORT                     # in another shell: every line comes back
 *
 * The root process listens on 127.0.0.1:port (0, the default: any free port), prints
 * `listening on 127.0.0.1:PORT` and accepts connections: forever (max 0, the default; Ctrl-C
 * stops it), or `max` of them, after which it stops listening, waits for their processes to end
 * and exits 0. Each connection goes in a message to a fresh process, which lunatic_mp places
 * round robin over the workers: the socket's descriptor travels to that worker with the message.
 * The process echoes what it reads until the client closes its side, prints
 * `connection N on worker W: B bytes echoed`, and closes the connection.
 */
#include <stdio.h>
#include <stdlib.h>

#include "lunatic.h"

#define STREAM 1 /* the tag of the message that carries a connection */

static uint8_t buffer[16384];

/* Echo the stream of the first STREAM message until the peer closes its side. */
__attribute__((export_name("echo_connection"))) void echo_connection(int64_t number) {
    lm_message msg;
    if (lm_receive_tag(&msg, STREAM, LM_FOREVER) != LM_DATA) return;
    uint64_t stream = lm_take_stream();
    uint64_t echoed = 0;
    for (;;) {
        uint32_t n = 0;
        int32_t result = lm_tcp_read(stream, buffer, sizeof buffer, &n);
        if (result == LM_OK && n == 0) break;
        if (result == LM_OK) result = lm_tcp_write_all(stream, buffer, n);
        if (result != LM_OK) {
            fprintf(stderr, "tcp_echo: connection %lld: %s\n", (long long)number,
                    result == LM_TIMEOUT ? "timed out" : lm_last_error());
            lm_tcp_drop(stream);
            return;
        }
        echoed += n;
    }
    /* report first: once the client sees the connection close, the line is out */
    printf("connection %lld on worker %u: %llu bytes echoed\n", (long long)number, lm_worker_of(lm_self()),
           (unsigned long long)echoed);
    fflush(stdout);
    lm_tcp_drop(stream);
}

/* A whole decimal argument in [0, max], or -1. */
static long number(const char *text, long max) {
    char *end;
    long value = strtol(text, &end, 10);
    return *text && !*end && value >= 0 && value <= max ? value : -1;
}

int main(int argc, char **argv) {
    long port = argc > 1 ? number(argv[1], 65535) : 0;
    long max = argc > 2 ? number(argv[2], 1000000) : 0;
    if (argc > 3 || port < 0 || max < 0) {
        fprintf(stderr, "usage: tcp_echo [port 0..65535] [max connections, 0: no limit]\n");
        return 2;
    }
    uint64_t listener;
    uint16_t bound;
    if (lm_tcp_bind("127.0.0.1", (uint16_t)port, &listener) != LM_OK ||
        lm_tcp_local_port(listener, &bound) != LM_OK) {
        fprintf(stderr, "tcp_echo: cannot listen on 127.0.0.1:%ld: %s\n", port, lm_last_error());
        return 1;
    }
    printf("listening on 127.0.0.1:%u\n", bound);
    fflush(stdout);

    long running = 0; /* connection processes to wait for */
    for (long n = 1; max == 0 || n <= max; n++) {
        uint64_t stream, child;
        lm_params params = {0};
        if (lm_tcp_accept(listener, &stream) != LM_OK) {
            fprintf(stderr, "tcp_echo: accept: %s\n", lm_last_error());
            return 1;
        }
        if (lm_spawn("echo_connection", lm_param_i64(&params, n), &child) != LM_OK) {
            fprintf(stderr, "tcp_echo: spawn: %s\n", lm_last_error());
            lm_tcp_drop(stream);
            continue;
        }
        if (max) { /* monitored before it has its stream, so before it can end */
            lm_monitor(child);
            running++;
        }
        lm_send_stream(child, STREAM, stream, NULL, 0);
    }

    /* max connections taken: refuse new ones, and wait for every connection's process. */
    lm_tcp_drop_listener(listener);
    for (long ended = 0; ended < running;) {
        lm_message msg;
        if (lm_receive(&msg, NULL, 0, LM_FOREVER) == LM_PROCESS_DIED) ended++;
    }
    return 0;
}
