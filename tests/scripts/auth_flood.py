"""A figure for docs/reliability.md: 60 strangers each send 15 MiB of an unfinished ``auth``
request to a TCP control server that has a token, and the server's RSS is printed before and after
(server and strangers run in this process, so the strangers' own buffers count too).

    python tests/scripts/auth_flood.py
"""

from __future__ import annotations

import asyncio

import msgpack
import psutil

from lunatic_mp.serve.config import ControlConfig, TcpAddress
from lunatic_mp.serve.control import ControlServer

STRANGERS = 60
MIB = 1 << 20
# a request [0, 1, "auth", [token]] whose token is a str32 of 15 MiB
START = bytes([0x94, 0, 1]) + msgpack.packb("auth") + bytes([0x91, 0xDB]) + (15 * MIB).to_bytes(4, "big")


async def stranger(port: int) -> asyncio.StreamWriter:
    """Send all but the last 16 bytes of the request (it is never finished); the connection,
    kept open by the caller."""
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(START)
        for index in range(15):
            writer.write(b"x" * (MIB - 16 if index == 14 else MIB))
            await writer.drain()
    except OSError:
        pass  # closed by the server
    return writer


async def main() -> None:
    config = ControlConfig(
        address=TcpAddress("127.0.0.1", 0), token="a-token-of-sixteen-chars", auth_timeout=60
    )
    server = ControlServer({}, config)
    address = await server.start()
    assert isinstance(address, TcpAddress)
    me = psutil.Process()
    before = me.memory_info().rss
    strangers = await asyncio.gather(*(stranger(address.port) for _ in range(STRANGERS)))
    await asyncio.sleep(1.0)  # let the server read what is in flight
    after = me.memory_info().rss
    buffered = sum(connection.decoder.buffered for connection in server.connections)
    print(
        f"RSS {before / MIB:.0f} MiB -> {after / MIB:.0f} MiB; {len(server.connections)} connections "
        f"open holding {buffered / MIB:.1f} MiB; closed: {dict(server.closed)}"
    )
    for writer in strangers:
        writer.close()
    await server.close()


if __name__ == "__main__":
    asyncio.run(main())
