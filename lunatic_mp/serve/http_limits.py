"""How long the HTTP front end waits on a client (``[http]`` of a serve config).

Without these a client could hold a connection open for ever: send half a request head and
stop (slowloris), send a body a byte a minute, or keep sending after a 413. Each is generous for
any real client and a bound on one that is not. (No aiohttp here: the config reads these.)
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_IDLE_TIMEOUT = 30.0
DEFAULT_BODY_TIMEOUT = 60.0
DEFAULT_LINGER = 2.0


@dataclass(frozen=True)
class HttpLimits:
    """``idle_timeout``: seconds a connection has, from its opening or its previous answer, to
    send a whole request head (request line and headers); a connection that has not is closed,
    idle keep-alive ones included. ``body_timeout``: seconds from the head to the body's last
    byte (later: 408 and the connection closed). ``linger``: seconds a connection closed after
    an answer (413, 408) before its body was read is still read from, and what arrives
    discarded, so that the client sees the answer rather than a reset."""

    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    linger: float = DEFAULT_LINGER

    def encode(self) -> list[float]:
        return [self.idle_timeout, self.body_timeout, self.linger]

    @classmethod
    def decode(cls, fields: list[float]) -> HttpLimits:
        idle_timeout, body_timeout, linger = fields
        return cls(float(idle_timeout), float(body_timeout), float(linger))


__all__ = ["DEFAULT_BODY_TIMEOUT", "DEFAULT_IDLE_TIMEOUT", "DEFAULT_LINGER", "HttpLimits"]
