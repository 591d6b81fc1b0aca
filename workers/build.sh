#!/usr/bin/env bash
# Build C guests to WebAssembly with Debian's clang, lld and wasi-libc:
#
#   apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32
#   workers/build.sh                      # every workers/examples/*.c -> workers/build/*.wasm
#   workers/build.sh -o DIR a.c b.c       # chosen sources into DIR
#
# or, without apt, with zig's clang (pip install 'lunatic-mp[guests]' installs ziglang):
#
#   CC="python3 -m ziglang cc" workers/build.sh
#
# Environment: CC (default clang; a command, with arguments if need be), EXTRA_CFLAGS (added to
# every compile, e.g. -msimd128).
# Exit status: 0 built (or up to date), 1 a source failed to compile, 2 usage, 3 no toolchain.
# A module is rebuilt only when it is older than its source, lunatic.h or this script (always
# when EXTRA_CFLAGS is set); each is written to a temporary name and renamed, so concurrent
# builds never see half a file.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
include="$here/../lunatic_mp/include"  # lunatic.h, shipped in the package (lunatic_mp.get_include())
out="$here/build"
if [ "${1:-}" = "-o" ]; then
    [ $# -ge 2 ] || { echo "usage: $0 [-o OUTDIR] [SOURCE.c ...]" >&2; exit 2; }
    out="$2"
    shift 2
fi
if [ $# -eq 0 ]; then
    set -- "$here"/examples/*.c
fi

CC="${CC:-clang}"
read -r -a cc <<<"$CC"
# -O2, all warnings as errors; --strip-debug drops DWARF but keeps the name section, so traps
# still show function names in backtraces.
read -r -a extra <<<"${EXTRA_CFLAGS:-}"
flags=(--target=wasm32-wasi -std=gnu11 -O2 -Wall -Wextra -Werror -I "$include" -Wl,--strip-debug
       "${extra[@]}")

if ! command -v "${cc[0]}" >/dev/null 2>&1; then
    echo "build.sh: $CC not found; on Debian: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32" >&2
    exit 3
fi

mkdir -p "$out"
probe="$out/.probe.$$"
if ! printf '#include <stdio.h>\nint main(void) { return puts("") < 0; }\n' |
    "${cc[@]}" "${flags[@]}" -x c - -o "$probe.wasm" 2>"$probe.log"; then
    echo "build.sh: $CC cannot build for wasm32-wasi (is wasi-libc, lld, libclang-rt-14-dev-wasm32 installed? or CC="python3 -m ziglang cc"):" >&2
    cat "$probe.log" >&2
    rm -f "$probe.wasm" "$probe.log"
    exit 3
fi
rm -f "$probe.wasm" "$probe.log"

for src in "$@"; do
    [ -f "$src" ] || { echo "build.sh: no such source: $src" >&2; exit 2; }
    name="$(basename "$src" .c)"
    target="$out/$name.wasm"
    if [ -f "$target" ] && [ "$target" -nt "$src" ] && [ "$target" -nt "$include/lunatic.h" ] &&
        [ "$target" -nt "${BASH_SOURCE[0]}" ] && [ -z "${EXTRA_CFLAGS:-}" ]; then
        continue
    fi
    tmp="$out/.$name.wasm.$$"
    if ! "${cc[@]}" "${flags[@]}" "$src" -o "$tmp"; then
        rm -f "$tmp"
        echo "build.sh: $src did not compile" >&2
        exit 1
    fi
    mv -f "$tmp" "$target"
    echo "built $target"
done
