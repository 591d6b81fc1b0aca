/*
 * hello: WASI output and arguments, and a first call into the lunatic ABI.
 *
 *   workers/build.sh && lunatic-mp run workers/build/hello.wasm -- Ada Grace
 *
 * Greets each argument (or the world) on stdout, says where it runs, and reports on stderr.
 */
#include <stdio.h>

#include "lunatic.h"

int main(int argc, char **argv) {
    printf("lunatic ABI %u.%u.%u, process %llu on worker %u\n", lunatic_version_major(),
           lunatic_version_minor(), lunatic_version_patch(), (unsigned long long)lm_self(),
           lm_worker_of(lm_self()));
    if (argc < 2) {
        printf("Hello, world!\n");
    }
    for (int i = 1; i < argc; i++) {
        printf("Hello, %s!\n", argv[i]);
    }
    fprintf(stderr, "hello: %d argument(s)\n", argc - 1);
    return 0;
}
