/*
 * sdk_checks: the helper layer of lunatic_mp/include/lunatic.h, checked against the real runtime.
 *
 * main runs every check in order and prints "ok <name>" for each; the first failed expectation
 * prints "FAIL <name>: <what>" and exits with status 1. Build with -msimd128 (v128 parameters).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasm_simd128.h>

#include "lunatic.h"

static const char *current = "?";

#define EXPECT(cond)                                                         \
    do {                                                                     \
        if (!(cond)) {                                                       \
            printf("FAIL %s: %s (line %d)\n", current, #cond, __LINE__);     \
            exit(1);                                                         \
        }                                                                    \
    } while (0)

#define CHECK(name) for (int once_ = (current = name, 1); once_; once_ = 0, printf("ok %s\n", name))

/* -- exports the checks spawn ---------------------------------------------------------------- */

/* Sends its parameters back to parent: an i32, an i64 and a v128, as 4 + 8 + 16 bytes. */
__attribute__((export_name("echo_params"))) void echo_params(int32_t a, int64_t b, v128_t c, uint64_t parent) {
    uint8_t out[28];
    memcpy(out, &a, 4);
    memcpy(out + 4, &b, 8);
    memcpy(out + 12, &c, 16);
    lm_send(parent, 11, out, sizeof out);
}

/* Answers every request with "re:" and the request, until an empty one. */
__attribute__((export_name("echo_server"))) void echo_server(void) {
    for (;;) {
        lm_message request;
        char data[64];
        lm_receive_into(&request, data + 3, sizeof data - 3, NULL, 0, LM_FOREVER);
        if (request.size == 0) return;
        memcpy(data, "re:", 3);
        lm_reply(&request, data, 3 + (uint32_t)request.size);
    }
}

__attribute__((export_name("crash"))) void crash(void) { __builtin_trap(); }

__attribute__((export_name("quick"))) void quick(void) {}

/* Waits for a message that never comes. */
__attribute__((export_name("park"))) void park(void) {
    lm_message msg;
    lm_receive_tag(&msg, 999, LM_FOREVER);
}

/* Sends parent its WASI arguments and the variable GREETING, as "argc|argv[1]|GREETING". */
__attribute__((export_name("show_env"))) void show_env(uint64_t parent) {
    char text[128];
    const char *greeting = getenv("GREETING");
    /* the arguments, through WASI directly: this export is not main */
    size_t argc = 0, size = 0;
    if (__wasi_args_sizes_get(&argc, &size) != 0) abort();
    char *argv_buf = malloc(size);
    char **argv = malloc(argc * sizeof *argv);
    if (__wasi_args_get((uint8_t **)argv, (uint8_t *)argv_buf) != 0) abort();
    int n = snprintf(text, sizeof text, "%zu|%s|%s", argc, argc > 0 ? argv[0] : "", greeting ? greeting : "");
    lm_send(parent, 12, text, (uint32_t)n);
}

/* -- helpers --------------------------------------------------------------------------------- */

static void send_self(int64_t tag, const char *text) { lm_send(lm_self(), tag, text, (uint32_t)strlen(text)); }

/* Receive a data message with one of tags and return its text (static buffer). */
static const char *take_text(const int64_t *tags, uint32_t ntags, int64_t *tag) {
    static char text[256];
    lm_message msg;
    EXPECT(lm_receive(&msg, tags, ntags, 5000) == LM_DATA);
    EXPECT(msg.size < sizeof text);
    text[lm_read(text, sizeof text - 1)] = '\0';
    if (tag) *tag = msg.tag;
    return text;
}

static void wait_for_death(uint64_t pid) {
    lm_message msg;
    lm_monitor(pid);
    int64_t no_tag = 0;
    EXPECT(lm_receive(&msg, &no_tag, 1, 5000) == LM_PROCESS_DIED); /* ProcessDied has tag 0 */
    EXPECT(msg.pid == pid);
}

/* Traps after a call, which makes the compiler move the C stack pointer (__stack_pointer) down
 * for buf first: the trap leaves it there. */
static void trap_now(void *arg) {
    char buf[512];
    snprintf(buf, sizeof buf, "%p", arg);
    if (buf[0]) __builtin_trap();
}

static void no_trap(void *arg) { *(int *)arg += 1; }

/* (module (memory (export "memory") 1) (func (export "run"))) */
static const uint8_t tiny_module[] = {
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x04, 0x01, 0x60, 0x00, 0x00, 0x03, 0x02, 0x01,
    0x00, 0x05, 0x03, 0x01, 0x00, 0x01, 0x07, 0x10, 0x02, 0x06, 0x6d, 0x65, 0x6d, 0x6f, 0x72, 0x79, 0x02,
    0x00, 0x03, 0x72, 0x75, 0x6e, 0x00, 0x00, 0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b,
};

int main(void) {
    int64_t tag;
    lm_message msg;

    CHECK("version") {
        EXPECT(lunatic_version_major() == 0 && lunatic_version_minor() == 13);
    }

    CHECK("selective receive") {
        send_self(5, "five");
        send_self(6, "six");
        send_self(7, "seven");
        int64_t six = 6, five_or_seven[2] = {7, 5};
        EXPECT(strcmp(take_text(&six, 1, &tag), "six") == 0 && tag == 6);
        EXPECT(strcmp(take_text(five_or_seven, 2, &tag), "five") == 0 && tag == 5); /* oldest match */
        EXPECT(strcmp(take_text(NULL, 0, &tag), "seven") == 0 && tag == 7);
    }

    CHECK("receive timeout") {
        EXPECT(lm_receive_tag(&msg, 99, 10) == LM_TIMEOUT);
        EXPECT(lm_receive(&msg, NULL, 0, 0) == LM_TIMEOUT);
    }

    CHECK("partial read") {
        send_self(8, "0123456789");
        char head[4] = {0}, rest[16] = {0};
        EXPECT(lm_receive_into(&msg, head, 3, NULL, 0, 1000) == LM_DATA);
        EXPECT(msg.size == 10 && msg.pid == lm_self() && memcmp(head, "012", 3) == 0);
        EXPECT(lm_read(rest, sizeof rest) == 7 && strcmp(rest, "3456789") == 0);
    }

    CHECK("spawn parameters") {
        lm_params params = {0};
        lm_param_i32(&params, -7);
        lm_param_i64(&params, -1234567890123LL);
        lm_param_v128(&params, 0x0706050403020100ULL, 0x0F0E0D0C0B0A0908ULL);
        lm_param_i64(&params, (int64_t)lm_self());
        EXPECT(params.len == 4 * LUNATIC_PARAM_SIZE && params.bytes[0] == 0x7F && params.bytes[17] == 0x7E &&
               params.bytes[34] == 0x7B);
        uint64_t child;
        EXPECT(lm_spawn("echo_params", &params, &child) == LM_OK);
        uint8_t out[28];
        int64_t eleven = 11;
        EXPECT(lm_receive_into(&msg, out, sizeof out, &eleven, 1, 5000) == LM_DATA && msg.pid == child);
        int32_t a;
        int64_t b;
        memcpy(&a, out, 4);
        memcpy(&b, out + 4, 8);
        EXPECT(a == -7 && b == -1234567890123LL);
        for (int i = 0; i < 16; i++) EXPECT(out[12 + i] == i);
    }

    CHECK("spawn error") {
        uint64_t child = 12345;
        EXPECT(lm_spawn("no_such_export", NULL, &child) == LM_ERROR && child == 12345);
        EXPECT(strstr(lm_last_error(), "no_such_export") != NULL);
    }

    CHECK("request reply") {
        uint64_t server;
        EXPECT(lm_spawn("echo_server", NULL, &server) == LM_OK);
        char reply[64] = {0};
        EXPECT(lm_request(server, "ping", 4, &msg, reply, sizeof reply - 1, 5000) == LM_OK);
        EXPECT(msg.size == 7 && strcmp(reply, "re:ping") == 0 && msg.pid == server);
        int64_t first_tag = msg.tag;
        memset(reply, 0, sizeof reply);
        EXPECT(lm_request(server, "again", 5, &msg, reply, sizeof reply - 1, 5000) == LM_OK);
        EXPECT(strcmp(reply, "re:again") == 0 && msg.tag != first_tag);
        lm_send(server, 0, NULL, 0);
        wait_for_death(server);
    }

    CHECK("request timeout") {
        uint64_t parked;
        EXPECT(lm_spawn("park", NULL, &parked) == LM_OK);
        char reply[8];
        EXPECT(lm_request(parked, "hello?", 6, &msg, reply, sizeof reply, 20) == LM_TIMEOUT);
        lm_kill(parked);
        wait_for_death(parked);
    }

    CHECK("link") {
        lm_die_when_link_dies(0);
        uint64_t child;
        EXPECT(lm_spawn_link(42, "crash", NULL, &child) == LM_OK);
        EXPECT(lm_receive(&msg, NULL, 0, 5000) == LM_LINK_DIED && msg.tag == 42 && msg.pid == child);
        uint64_t parked;
        EXPECT(lm_spawn("park", NULL, &parked) == LM_OK);
        lm_link(43, parked);
        lm_kill(parked);
        EXPECT(lm_receive(&msg, NULL, 0, 5000) == LM_LINK_DIED && msg.tag == 43 && msg.pid == parked);
        EXPECT(lm_spawn("park", NULL, &parked) == LM_OK);
        lm_link(44, parked);
        lm_unlink(parked);
        lm_kill(parked);
        wait_for_death(parked);
        EXPECT(lm_receive(&msg, NULL, 0, 50) == LM_TIMEOUT); /* unlinked: no LinkDied */
        lm_die_when_link_dies(1);
    }

    CHECK("monitor and kill") {
        uint64_t child;
        EXPECT(lm_spawn("quick", NULL, &child) == LM_OK);
        wait_for_death(child); /* even if it ended before the monitor */
        EXPECT(lm_spawn("park", NULL, &child) == LM_OK);
        EXPECT(lm_exists(child));
        lm_kill(child);
        wait_for_death(child);
        EXPECT(!lm_exists(child));
        EXPECT(lm_spawn("park", NULL, &child) == LM_OK);
        lm_monitor(child);
        lm_stop_monitoring(child);
        lm_kill(child);
        EXPECT(lm_receive(&msg, NULL, 0, 50) == LM_TIMEOUT);
    }

    CHECK("registry versions") {
        uint64_t newer, found = 0;
        EXPECT(lm_spawn("park", NULL, &newer) == LM_OK);
        EXPECT(!lm_lookup("svc", NULL, &found));
        lm_register("svc", "1.0.0", lm_self());
        lm_register("svc", "1.2.0", newer);
        lm_register("svc", NULL, lm_self());
        EXPECT(lm_lookup("svc", NULL, &found) && found == newer);
        EXPECT(lm_lookup("svc", "^1.1", &found) && found == newer);
        EXPECT(lm_lookup("svc", "=1.0.0", &found) && found == lm_self());
        EXPECT(lm_lookup("svc", "<1.2", &found) && found == lm_self());
        EXPECT(!lm_lookup("svc", "^2", &found));
        lm_unregister("svc", "1.2.0");
        EXPECT(lm_lookup("svc", "^1", &found) && found == lm_self());
        lm_register("svc", "1.3.0", newer);
        EXPECT(lm_lookup("svc", "^1.3", &found) && found == newer);
        lm_unregister("svc", NULL); /* every version, and the unversioned entry */
        EXPECT(!lm_lookup("svc", NULL, &found) && !lm_lookup("svc", "^1", &found));
        lm_kill(newer);
        wait_for_death(newer);
    }

    CHECK("opaque names") {
        /* lunatic-rs names processes crate@version::module::Ident: put/get/remove keep it whole */
        const char *name = "app@0.1.0::server::Counter";
        uint32_t len = (uint32_t)strlen(name);
        uint64_t node = 1, found = 0;
        lunatic_registry_put(name, len, 0, lm_self());
        EXPECT(lunatic_registry_get(name, len, &node, &found) == LM_OK && found == lm_self() && node == 0);
        EXPECT(!lm_lookup("app", NULL, &found));
        lunatic_registry_remove(name, len);
        EXPECT(lunatic_registry_get(name, len, &node, &found) == 1);
    }

    CHECK("get or spawn") {
        uint64_t first = 0, second = 0;
        EXPECT(lm_get_or_spawn("single@1.0.0", 0, "park", NULL, &first) == LM_OK);
        EXPECT(lm_get_or_spawn("single@1.0.0", 0, "park", NULL, &second) == LM_ALREADY_REGISTERED);
        EXPECT(first == second && lm_exists(first));
        uint64_t node = 1, found = 0; /* the name as it is, not "single" version 1.0.0 */
        EXPECT(lunatic_registry_get("single@1.0.0", 12, &node, &found) == LM_OK && found == first && node == 0);
        EXPECT(!lm_lookup("single", NULL, &found));
        EXPECT(lm_get_or_spawn("broken@1.0.0", 0, "no_such_export", NULL, &second) == LM_ERROR);
        EXPECT(strstr(lm_last_error(), "no_such_export") != NULL);
        lm_kill(first);
        wait_for_death(first);
    }

    CHECK("timers") {
        uint64_t timer = lm_send_after(lm_self(), 77, "late", 4, 20);
        (void)timer;
        int64_t late = 77;
        EXPECT(lm_receive(&msg, &late, 1, 0) == LM_TIMEOUT); /* not yet */
        EXPECT(strcmp(take_text(&late, 1, &tag), "late") == 0 && tag == 77);
        uint64_t never = lm_send_after(lm_self(), 78, "never", 5, 60000);
        EXPECT(lm_cancel_timer(never));
        EXPECT(!lm_cancel_timer(never));
        int64_t cancelled = 78;
        EXPECT(lm_receive(&msg, &cancelled, 1, 50) == LM_TIMEOUT);
    }

    CHECK("catch") {
        int counter = 0;
        EXPECT(lm_catch(no_trap, &counter) == 1 && counter == 1);
        uint32_t sp = lm__stack_pointer();
        for (int i = 0; i < 1000; i++) EXPECT(lm_catch(trap_now, NULL) == 0);
        EXPECT(lm__stack_pointer() == sp); /* 1000 traps leaked no stack */
    }

    CHECK("error strings") {
        uint64_t id = 0;
        EXPECT(lunatic_process_compile_module("garbage", 7, &id) == LUNATIC_ERROR);
        char text[32];
        uint32_t size = lm_error_message(id, text, sizeof text);
        EXPECT(size > 0 && strlen(text) == (size < sizeof text ? size : sizeof text - 1));
    }

    CHECK("modules") {
        uint64_t module = 0, child;
        EXPECT(lunatic_process_compile_module(tiny_module, sizeof tiny_module, &module) == LUNATIC_OK);
        EXPECT(lm_spawn_ex(0, LUNATIC_SELF, (int64_t)module, "run", NULL, &child) == LM_OK);
        wait_for_death(child);
        lunatic_message_create_data(21, 0);
        uint64_t index = lunatic_message_push_module((int64_t)module);
        lunatic_message_send(lm_self());
        int64_t tag21 = 21;
        EXPECT(lm_receive(&msg, &tag21, 1, 1000) == LM_DATA);
        int64_t copy = lunatic_message_take_module(index);
        EXPECT(lm_spawn_ex(0, LUNATIC_SELF, copy, "run", NULL, &child) == LM_OK);
        wait_for_death(child);
        lunatic_process_drop_module(copy);
        lunatic_process_drop_module((int64_t)module);
    }

    CHECK("configs") {
        int64_t config = lunatic_process_create_config();
        EXPECT(config >= 0);
        lunatic_process_config_set_max_memory(config, 4 << 20);
        lunatic_process_config_set_max_fuel(config, 1000);
        EXPECT(lunatic_process_config_get_max_memory(config) == 4 << 20);
        EXPECT(lunatic_process_config_get_max_fuel(config) == 1000);
        EXPECT(!lunatic_process_config_can_spawn_processes(config));
        lunatic_process_config_set_can_spawn_processes(config, 1);
        EXPECT(lunatic_process_config_can_spawn_processes(config));
        const char *arg = "alpha", *key = "GREETING", *value = "hi there";
        lunatic_wasi_config_add_command_line_argument(config, arg, (uint32_t)strlen(arg));
        lunatic_wasi_config_add_environment_variable(config, key, (uint32_t)strlen(key), value,
                                                     (uint32_t)strlen(value));
        lm_params params = {0};
        uint64_t child;
        EXPECT(lm_spawn_ex(0, config, LUNATIC_SELF, "show_env", lm_param_i64(&params, (int64_t)lm_self()),
                           &child) == LM_OK);
        int64_t twelve = 12;
        /* a created config's arguments arrive as they are: no program name in front */
        EXPECT(strcmp(take_text(&twelve, 1, &tag), "1|alpha|hi there") == 0);
        lunatic_process_drop_config(config);
    }

    CHECK("metrics") {
        lm_counter("sdk.counter", 5);
        lm_increment_counter("sdk.counter");
        lm_gauge("sdk.gauge", 2.5);
        lunatic_metrics_increment_gauge("sdk.gauge", 9, 1.0);
        lunatic_metrics_decrement_gauge("sdk.gauge", 9, 0.5);
        lm_histogram("sdk.histogram", 0.25);
    }

    printf("all checks passed\n");
    return 0;
}
