/*
 * http_hello: an HTTP handler for `lunatic-mp serve`, one fresh process per request.
 *
 *   workers/build.sh
 *   cat > hello.toml <<'END'
 *   [modules]
 *   hello = "workers/build/http_hello.wasm"
 *   [[routes]]
 *   method = ["GET", "POST"]
 *   path = "/greet/{name}"
 *   module = "hello"
 *   END
 *   lunatic-mp serve hello.toml
 *   curl 'localhost:8080/greet/Ada%20L?lang=fr'      -> Bonjour, Ada L!
 *   curl -d 'Grace' localhost:8080/greet/x           -> Hello, Grace!
 *
 * Greets the last segment of the path (percent-decoded), or a POST's body, in the language of
 * the query's lang= (en, fr or de; en when absent). Answers 400 for an unknown language or an
 * empty name. The reply says which process answered (x-lunatic-pid) and echoes the request's
 * user-agent (x-echo-user-agent). A process that exits without replying, or traps, is answered
 * 500 by the server, with none of its details.
 */
#include <stdio.h>

#include "lunatic.h"

static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode src[0..len) into dst (at least len bytes); the decoded length. */
static uint32_t percent_decode(const char *src, uint32_t len, char *dst) {
    uint32_t out = 0;
    for (uint32_t i = 0; i < len; i++) {
        if (src[i] == '%' && i + 2 < len && hex(src[i + 1]) >= 0 && hex(src[i + 2]) >= 0) {
            dst[out++] = (char)(hex(src[i + 1]) * 16 + hex(src[i + 2]));
            i += 2;
        } else {
            dst[out++] = src[i];
        }
    }
    return out;
}

/* The value of key in a query string ("a=1&lang=fr"), or NULL; its length in *len. */
static const char *query_value(const char *query, uint32_t query_len, const char *key, uint32_t *len) {
    uint32_t key_len = (uint32_t)strlen(key);
    uint32_t i = 0;
    while (i < query_len) {
        uint32_t end = i;
        while (end < query_len && query[end] != '&') end++;
        if (end - i > key_len && memcmp(query + i, key, key_len) == 0 && query[i + key_len] == '=') {
            *len = end - i - key_len - 1;
            return query + i + key_len + 1;
        }
        i = end + 1;
    }
    return 0;
}

static void reply_text(const lm_http_request *req, uint32_t status, const char *text, const char *agent,
                       uint32_t agent_len) {
    char pid[24], echoed[128];
    snprintf(pid, sizeof pid, "%llu", (unsigned long long)lm_self());
    snprintf(echoed, sizeof echoed, "%.*s", (int)(agent_len < 100 ? agent_len : 100), agent ? agent : "");
    const char *headers[] = {"content-type", "text/plain; charset=utf-8", "x-lunatic-pid", pid,
                             "x-echo-user-agent", echoed};
    lm_http_reply(req, status, headers, 3, text, (uint32_t)strlen(text));
}

int main(void) {
    lm_http_request req;
    if (lm_http_receive(&req, 10000) != LM_OK) return 1; /* no request: the server answers 500 */
    uint32_t agent_len = 0;
    const char *agent = lm_http_header(&req, "user-agent", &agent_len);

    /* the name: a POST's body, else the path's last segment */
    char name[256];
    uint32_t name_len;
    if (req.method_len == 4 && memcmp(req.method, "POST", 4) == 0 && req.body_len) {
        name_len = req.body_len < sizeof name - 1 ? req.body_len : (uint32_t)sizeof name - 1;
        memcpy(name, req.body, name_len);
    } else {
        uint32_t start = req.path_len;
        while (start > 0 && req.path[start - 1] != '/') start--;
        uint32_t len = req.path_len - start;
        if (len > sizeof name - 1) len = sizeof name - 1;
        name_len = percent_decode(req.path + start, len, name);
    }
    name[name_len] = 0;

    uint32_t lang_len = 0;
    const char *lang = query_value(req.query, req.query_len, "lang", &lang_len);
    const char *greeting = "Hello";
    if (lang && lang_len == 2 && memcmp(lang, "fr", 2) == 0) {
        greeting = "Bonjour";
    } else if (lang && lang_len == 2 && memcmp(lang, "de", 2) == 0) {
        greeting = "Hallo";
    } else if (lang && !(lang_len == 2 && memcmp(lang, "en", 2) == 0)) {
        reply_text(&req, 400, "unknown language: use lang=en, fr or de\n", agent, agent_len);
        lm_http_free(&req);
        return 0;
    }
    if (name_len == 0) {
        reply_text(&req, 400, "whom should I greet? /greet/NAME, or POST a name\n", agent, agent_len);
        lm_http_free(&req);
        return 0;
    }
    char text[300];
    snprintf(text, sizeof text, "%s, %s!\n", greeting, name);
    reply_text(&req, 200, text, agent, agent_len);
    lm_http_free(&req);
    return 0;
}
