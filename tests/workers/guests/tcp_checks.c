/*
 * tcp_checks: the lm_tcp helpers' other paths, beside what tcp_echo.c uses (run by
 * tests/workers/test_tcp_helpers.py, which is the client).
 *
 * Prints one line per check. Addresses that are not dotted quads fail with their error; then it
 * listens on 127.0.0.1, prints the port, and accepts one connection, whose client sends nothing
 * at first: a read with a 50 ms timeout gives LM_TIMEOUT, a written greeting reaches the client,
 * the client's answer comes back, and after the client closes a read gives 0 bytes.
 */
#include <stdio.h>

#include "lunatic.h"

static void check_bad_address(const char *text) {
    uint64_t listener = 0;
    int32_t result = lm_tcp_bind(text, 0, &listener);
    printf("bind \"%s\": %s\n", text, result == LM_ERROR ? lm_last_error() : "bound");
}

int main(void) {
    const char *bad[] = {"", "127.0.0", "127.0.0.1.2", "256.0.0.1", "1.2.3.4x", "1..2.3", "localhost", "1234.0.0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) check_bad_address(bad[i]);

    uint64_t listener, stream;
    uint16_t port;
    if (lm_tcp_bind("127.0.0.1", 0, &listener) != LM_OK || lm_tcp_local_port(listener, &port) != LM_OK) {
        printf("listen: %s\n", lm_last_error());
        return 1;
    }
    printf("port %u\n", port);
    fflush(stdout);
    if (lm_tcp_accept(listener, &stream) != LM_OK) {
        printf("accept: %s\n", lm_last_error());
        return 1;
    }
    lm_tcp_drop_listener(listener);

    char buf[64];
    uint32_t n = 0;
    lm_tcp_set_timeouts(stream, 50, LM_FOREVER);
    printf("quiet read: %s\n", lm_tcp_read(stream, buf, sizeof buf, &n) == LM_TIMEOUT ? "timed out" : "no timeout");
    lm_tcp_set_timeouts(stream, LM_FOREVER, LM_FOREVER);
    printf("greeting: %s\n", lm_tcp_write_all(stream, "hello\n", 6) == LM_OK ? "written" : lm_last_error());
    fflush(stdout);
    if (lm_tcp_read(stream, buf, sizeof buf - 1, &n) != LM_OK) {
        printf("read: %s\n", lm_last_error());
        return 1;
    }
    buf[n] = '\0';
    printf("client said: %s\n", buf);
    printf("after close: %s\n", lm_tcp_read(stream, buf, sizeof buf, &n) == LM_OK && n == 0 ? "0 bytes" : "more");
    lm_tcp_drop(stream);
    return 0;
}
