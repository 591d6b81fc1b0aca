/*
 * fanout: checksums over message payloads, as jobs fanned out to processes.
 *
 *   lunatic-mp run --workers 2 workers/build/fanout.wasm -- [jobs] [bytes]
 *
 * The exports crc32 and fnv1a64 are bytes jobs in the convention of lunatic_mp's WasmExecutor
 * (docs/guide.md): the job's input is its first message, and its answer is one message sent
 * back to that message's sender with the same tag: the CRC-32 (as zlib.crc32 computes it) as 4
 * little-endian bytes, or the 64-bit FNV-1a hash as 8. From Python:
 *
 *   with runtime.executor(runtime.load_module("workers/build/fanout.wasm")) as executor:
 *       crcs = list(executor.map("crc32", payloads))
 *
 * Run as a program, the root process does the same by itself: it spawns `jobs` (8) crc32
 * processes, sends each `bytes` (65536) of pseudo-random data (xorshift64, seeded with the job
 * number), and prints every job's CRC as the answers come back, in job order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "lunatic.h"

static uint32_t crc32(const uint8_t *data, uint64_t len) {
    static uint32_t table[256];
    if (!table[1]) {
        for (uint32_t n = 0; n < 256; n++) {
            uint32_t c = n;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[n] = c;
        }
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (uint64_t i = 0; i < len; i++) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static uint64_t fnv1a64(const uint8_t *data, uint64_t len) {
    uint64_t hash = 0xCBF29CE484222325ull;
    for (uint64_t i = 0; i < len; i++) hash = (hash ^ data[i]) * 0x100000001B3ull;
    return hash;
}

/* The job's input: its first message, whole, in a malloc'd buffer. */
static uint8_t *take_input(lm_message *request) {
    lm_receive(request, NULL, 0, LM_FOREVER);
    uint8_t *data = malloc(request->size ? request->size : 1);
    if (!data) abort();
    lm_read(data, (uint32_t)request->size);
    return data;
}

__attribute__((export_name("crc32"))) void crc32_job(void) {
    lm_message request;
    uint8_t *data = take_input(&request);
    uint32_t crc = crc32(data, request.size);
    uint8_t answer[4] = {crc, crc >> 8, crc >> 16, crc >> 24};
    lm_reply(&request, answer, sizeof answer);
    free(data);
}

__attribute__((export_name("fnv1a64"))) void fnv1a64_job(void) {
    lm_message request;
    uint8_t *data = take_input(&request);
    uint64_t hash = fnv1a64(data, request.size);
    uint8_t answer[8];
    for (int i = 0; i < 8; i++) answer[i] = (uint8_t)(hash >> (8 * i));
    lm_reply(&request, answer, sizeof answer);
    free(data);
}

/* The payload of job `seed`: xorshift64 bytes, the low byte of each step. */
static void fill(uint8_t *data, long len, uint64_t seed) {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull;
    for (long i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        data[i] = (uint8_t)x;
    }
}

int main(int argc, char **argv) {
    long jobs = argc > 1 ? atol(argv[1]) : 8;
    long size = argc > 2 ? atol(argv[2]) : 65536;
    if (jobs < 1 || jobs > 10000 || size < 0) {
        fprintf(stderr, "usage: fanout [jobs 1..10000] [bytes >= 0]\n");
        return 2;
    }
    uint8_t *payload = malloc(size ? size : 1);
    uint32_t *crcs = calloc(jobs, sizeof *crcs);
    if (!payload || !crcs) return 1;
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (long job = 0; job < jobs; job++) {
        uint64_t pid;
        if (lm_spawn("crc32", NULL, &pid) != LM_OK) {
            fprintf(stderr, "fanout: spawn failed: %s\n", lm_last_error());
            return 1;
        }
        fill(payload, size, job + 1);
        lm_send(pid, job + 1, payload, size); /* the tag says which job answers */
    }
    for (long answered = 0; answered < jobs; answered++) {
        lm_message answer;
        uint8_t bytes[4];
        if (lm_receive_into(&answer, bytes, sizeof bytes, NULL, 0, 10000) != LM_DATA || answer.tag < 1 ||
            answer.tag > jobs || answer.size != 4) {
            fprintf(stderr, "fanout: a job did not answer\n");
            return 1;
        }
        crcs[answer.tag - 1] = bytes[0] | bytes[1] << 8 | bytes[2] << 16 | (uint32_t)bytes[3] << 24;
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    for (long job = 0; job < jobs; job++) printf("job %ld: crc32 %08x\n", job + 1, crcs[job]);
    double ms = (end.tv_sec - start.tv_sec) * 1e3 + (end.tv_nsec - start.tv_nsec) / 1e6;
    printf("%ld jobs of %ld bytes in %.1f ms\n", jobs, size, ms);
    return 0;
}
