"""Micro-benchmark of the frame codec (not a `lunatic-mp bench` scenario): encode and decode of
three typical frames, best of five runs of 200,000 each.

    python -m benchmarks.frames_codec
"""

from __future__ import annotations

import timeit
from functools import partial

from lunatic_mp.cluster.frames import Frame, Message, RegistryReply, Spawn, decode, encode

CASES: dict[str, Frame] = {
    "Message": Message(5, 6, 7, b"x" * 64, (b"h" * 32,)),
    "Spawn": Spawn(1, 2, b"m" * 32, "main", (1, 2, 3), b"\x7f\x7f\x7e", b"c" * 40, 0, 0),
    "RegistryReply": RegistryReply(1, 2, True, 3, 4, ""),
}


def main(number: int = 200_000) -> None:
    for name, frame in CASES.items():
        data = encode(frame)
        enc = min(timeit.repeat(partial(encode, frame), number=number, repeat=5)) / number * 1e9
        dec = min(timeit.repeat(partial(decode, data), number=number, repeat=5)) / number * 1e9
        print(f"{name:14s} encode {enc:6.0f} ns  decode {dec:6.0f} ns")


if __name__ == "__main__":
    main()
