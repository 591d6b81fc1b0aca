/*
 * kv: a key-value server registered by name, and its clients.
 *
 *   lunatic-mp run --workers 2 workers/build/kv.wasm -- [clients] [keys]
 *
 * The server registers itself in the registry as kv version 1.0.0; clients find it by name and
 * version requirement (kv@^1), never by a pid handed to them. Each of `clients` (4) clients
 * puts `keys` (100) keys, reads them all back, and deletes every other one. The root process
 * starts it all, checks the count, stops the server, and shows that its name went with it.
 *
 * Requests are one message: op ('P' put, 'G' get, 'D' delete, 'N' count, 'S' stop), key
 * length, value length, key, value. Replies: '+' (and the value, or the count as 8 bytes) or
 * '-' (no such key), '!' (bad request). The server takes its name out of the registry before it
 * answers a stop, so that nobody finds a server that is going away.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lunatic.h"

#define READY 1
#define DONE 2
#define MAX_TEXT 64
#define SLOTS 4096 /* open addressing; the server holds at most SLOTS - 1 keys */

/* -- the server ------------------------------------------------------------------------------ */

typedef struct {
    uint8_t used, key_len, value_len;
    char key[MAX_TEXT], value[MAX_TEXT];
} entry;

static entry *table;
static uint64_t count;

/* The slot of key: where it is, or the empty slot where it would go. Deleting moves the run's
 * later entries back (no tombstones). */
static uint32_t slot_of(const char *key, uint8_t len) {
    uint32_t h = 2166136261u;
    for (uint8_t i = 0; i < len; i++) h = (h ^ (uint8_t)key[i]) * 16777619u;
    for (uint32_t s = h % SLOTS;; s = (s + 1) % SLOTS) {
        if (!table[s].used || (table[s].key_len == len && memcmp(table[s].key, key, len) == 0)) return s;
    }
}

static void remove_slot(uint32_t s) {
    table[s].used = 0;
    for (uint32_t next = (s + 1) % SLOTS; table[next].used; next = (next + 1) % SLOTS) {
        entry moved = table[next];
        table[next].used = 0;
        table[slot_of(moved.key, moved.key_len)] = moved;
    }
}

/* Answer one request; reply holds up to 1 + MAX_TEXT bytes. Returns the reply's length. */
static uint32_t handle(const uint8_t *req, uint64_t len, uint8_t *reply) {
    if (len < 3 || req[1] > MAX_TEXT || req[2] > MAX_TEXT || len != 3u + req[1] + req[2]) {
        reply[0] = '!';
        return 1;
    }
    const char *key = (const char *)req + 3, *value = key + req[1];
    uint32_t s = req[0] == 'N' ? 0 : slot_of(key, req[1]);
    switch (req[0]) {
    case 'P':
        if (!table[s].used) {
            if (count == SLOTS - 1) break;
            count++;
        }
        table[s].used = 1;
        table[s].key_len = req[1];
        table[s].value_len = req[2];
        memcpy(table[s].key, key, req[1]);
        memcpy(table[s].value, value, req[2]);
        reply[0] = '+';
        return 1;
    case 'G':
        if (!table[s].used) break;
        reply[0] = '+';
        memcpy(reply + 1, table[s].value, table[s].value_len);
        return 1 + table[s].value_len;
    case 'D':
        if (!table[s].used) break;
        remove_slot(s);
        count--;
        reply[0] = '+';
        return 1;
    case 'N':
        reply[0] = '+';
        memcpy(reply + 1, &count, sizeof count);
        return 1 + sizeof count;
    default:
        reply[0] = '!';
        return 1;
    }
    reply[0] = '-';
    return 1;
}

__attribute__((export_name("kv_server"))) void kv_server(uint64_t owner) {
    table = calloc(SLOTS, sizeof *table);
    if (!table) abort();
    lm_register("kv", "1.0.0", lm_self());
    lm_send(owner, READY, NULL, 0);
    for (;;) {
        lm_message request;
        uint8_t data[3 + 2 * MAX_TEXT], reply[1 + MAX_TEXT];
        if (lm_receive_into(&request, data, sizeof data, NULL, 0, LM_FOREVER) != LM_DATA) continue;
        if (request.size == 3 && data[0] == 'S') {
            lm_unregister("kv", "1.0.0");
            lm_reply(&request, "+", 1);
            return;
        }
        uint32_t n = request.size > sizeof data ? (reply[0] = '!', 1) : handle(data, request.size, reply);
        lm_reply(&request, reply, n);
    }
}

/* -- clients --------------------------------------------------------------------------------- */

/* One request: returns the reply's status byte, and the value (NUL-terminated) into value. */
static char call(uint64_t server, char op, const char *key, const char *value, char *out) {
    uint8_t req[3 + 2 * MAX_TEXT], reply[1 + MAX_TEXT + 1];
    size_t key_len = strlen(key), value_len = value ? strlen(value) : 0;
    req[0] = (uint8_t)op;
    req[1] = (uint8_t)key_len;
    req[2] = (uint8_t)value_len;
    memcpy(req + 3, key, key_len);
    if (value_len) memcpy(req + 3 + key_len, value, value_len);
    lm_message answer;
    if (lm_request(server, req, 3 + key_len + value_len, &answer, reply, sizeof reply - 1, 10000) != LM_OK) {
        return '?';
    }
    if (out) {
        uint64_t n = answer.size ? answer.size - 1 : 0;
        memcpy(out, reply + 1, n);
        out[n] = '\0';
    }
    return answer.size ? (char)reply[0] : '?';
}

/* What a client reports to the root when it is done. */
typedef struct {
    int64_t id, puts, read_back, deleted;
} report;

__attribute__((export_name("kv_client"))) void kv_client(int64_t id, int64_t keys, uint64_t owner) {
    report r = {id, 0, 0, 0};
    uint64_t server;
    if (lm_lookup("kv", "^1", &server)) {
        char key[MAX_TEXT], value[MAX_TEXT], got[MAX_TEXT + 1];
        for (int64_t k = 0; k < keys; k++) {
            snprintf(key, sizeof key, "client%lld/key%lld", (long long)id, (long long)k);
            snprintf(value, sizeof value, "%lld", (long long)(id * 1000000 + k * k));
            r.puts += call(server, 'P', key, value, NULL) == '+';
        }
        for (int64_t k = 0; k < keys; k++) {
            snprintf(key, sizeof key, "client%lld/key%lld", (long long)id, (long long)k);
            snprintf(value, sizeof value, "%lld", (long long)(id * 1000000 + k * k));
            r.read_back += call(server, 'G', key, NULL, got) == '+' && strcmp(got, value) == 0;
        }
        for (int64_t k = 0; k < keys; k += 2) {
            snprintf(key, sizeof key, "client%lld/key%lld", (long long)id, (long long)k);
            r.deleted += call(server, 'D', key, NULL, NULL) == '+' && call(server, 'G', key, NULL, got) == '-';
        }
    }
    lm_send(owner, DONE, &r, sizeof r);
}

/* -- the root -------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    int64_t clients = argc > 1 ? atoll(argv[1]) : 4;
    int64_t keys = argc > 2 ? atoll(argv[2]) : 100;
    if (clients < 1 || clients > 1000 || keys < 0 || clients * keys >= SLOTS) {
        fprintf(stderr, "usage: kv [clients 1..1000] [keys >= 0], clients * keys < %d\n", SLOTS);
        return 2;
    }
    lm_params params = {0};
    uint64_t server, found;
    if (lm_spawn("kv_server", lm_param_i64(&params, (int64_t)lm_self()), &server) != LM_OK) {
        fprintf(stderr, "kv: %s\n", lm_last_error());
        return 1;
    }
    lm_message msg;
    if (lm_receive_tag(&msg, READY, 10000) != LM_DATA) {
        fprintf(stderr, "kv: the server did not start\n");
        return 1;
    }
    printf("kv@^1 is %s\n", lm_lookup("kv", "^1", &found) && found == server ? "the server" : "missing");
    printf("kv@^2 is %s\n", lm_lookup("kv", "^2", &found) ? "found" : "not registered");

    for (int64_t id = 1; id <= clients; id++) {
        lm_params client_params = {0};
        lm_param_i64(lm_param_i64(lm_param_i64(&client_params, id), keys), (int64_t)lm_self());
        uint64_t pid;
        if (lm_spawn("kv_client", &client_params, &pid) != LM_OK) {
            fprintf(stderr, "kv: %s\n", lm_last_error());
            return 1;
        }
    }
    report *reports = calloc(clients, sizeof *reports);
    for (int64_t done = 0; done < clients; done++) {
        report r;
        if (lm_receive_into(&msg, &r, sizeof r, (int64_t[]){DONE}, 1, 30000) != LM_DATA || r.id < 1 ||
            r.id > clients) {
            fprintf(stderr, "kv: a client did not finish\n");
            return 1;
        }
        reports[r.id - 1] = r;
    }
    for (int64_t i = 0; i < clients; i++) {
        printf("client %lld: %lld puts, %lld read back, %lld deleted\n", (long long)reports[i].id,
               (long long)reports[i].puts, (long long)reports[i].read_back, (long long)reports[i].deleted);
    }

    uint8_t count_request[3] = {'N', 0, 0}, reply[1 + 8];
    uint64_t held = 0;
    if (lm_request(server, count_request, sizeof count_request, &msg, reply, sizeof reply, 10000) == LM_OK &&
        reply[0] == '+') {
        memcpy(&held, reply + 1, sizeof held);
    }
    printf("the server holds %llu keys\n", (unsigned long long)held);

    lm_monitor(server);
    uint8_t stop_request[3] = {'S', 0, 0};
    if (lm_request(server, stop_request, sizeof stop_request, &msg, reply, 1, 10000) != LM_OK || reply[0] != '+') {
        fprintf(stderr, "kv: the server did not stop\n");
        return 1;
    }
    printf("server stopping; kv is %s\n", lm_lookup("kv", NULL, &found) ? "still registered" : "no longer registered");
    int32_t kind;
    do {
        kind = lm_receive(&msg, NULL, 0, 10000);
    } while (kind == LM_DATA);
    printf("server %s\n", kind == LM_PROCESS_DIED && msg.pid == server ? "ended" : "did not end");
    return kind == LM_PROCESS_DIED ? 0 : 1;
}
