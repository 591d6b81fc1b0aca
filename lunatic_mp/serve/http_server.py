"""The aiohttp server under the HTTP front end (:mod:`lunatic_mp.serve.http`), bounded.

aiohttp's low-level server, with what a server facing the internet needs and aiohttp leaves
open: a connection must send its request head within ``idle_timeout`` (aiohttp's keep-alive
timer, which also runs from a connection's opening, so a slowloris client is closed as an idle
one is); a body must arrive within ``body_timeout`` (:func:`read_body`); after an answer that
closes the connection before the body was read (413, 408), the rest is read and dropped for at
most ``linger`` seconds (aiohttp's lingering close, 10 s unless set). Errors aiohttp answers
itself (a request that does not parse: 400) carry no byte of the request, and every answer's
``Server`` header names lunatic-mp alone, not the Python and aiohttp versions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus

from aiohttp import hdrs, web
from aiohttp.web_protocol import RequestHandler

from lunatic_mp.serve.http_limits import HttpLimits

log = logging.getLogger(__name__)

SERVER_HEADER = "lunatic-mp"
"""The ``Server`` header of every answer a guest does not set one for."""


class _Connection(RequestHandler):
    """One client connection: aiohttp's, with answers that echo nothing and name no versions."""

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """aiohttp's error answer (a request that does not parse, a handler that raised) without
        the request's bytes that aiohttp puts in it; a client's mistake is logged at debug
        level only, so that a flood of them does not flood the log."""
        if status >= 500:
            self.log_exception("Error handling request from %s", request.remote, exc_info=exc)
        else:
            log.debug("HTTP %d for a request from %s: %s", status, request.remote, exc)
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was being sent already: the connection is broken")
        try:
            phrase = HTTPStatus(status).phrase.lower()
        except ValueError:
            phrase = "error"
        response = web.Response(status=status, text=f"{status}: {phrase}\n")
        response.force_close()
        return response

    async def finish_response(
        self, request: web.BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        if not resp.prepared:
            resp.headers.setdefault(hdrs.SERVER, SERVER_HEADER)
        return await super().finish_response(request, resp, start_time)


class Server(web.Server):
    """aiohttp's low-level server whose connections take today's ``limits()`` (so a reload's
    new limits hold for connections opened after it)."""

    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        limits: Callable[[], HttpLimits],
    ) -> None:
        super().__init__(handler)
        self._limits = limits

    def __call__(self) -> RequestHandler:
        limits = self._limits()
        return _Connection(
            self,
            loop=self._loop,
            access_log=None,  # type: ignore[arg-type]  # aiohttp takes None: no access log
            keepalive_timeout=limits.idle_timeout,
            lingering_time=limits.linger,
        )


async def read_body(request: web.BaseRequest, limit: int, timeout: float) -> bytes | web.Response:
    """The body of ``request``, or the answer to give instead: 413 past ``limit`` bytes
    (announced or read), 408 when it is not all there within ``timeout`` seconds; either
    closes the connection."""
    if request.content_length is not None and request.content_length > limit:
        return _closing(413, f"the body is larger than {limit} bytes")
    if not request.body_exists:
        return b""
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            while chunk := await request.content.readany():
                size += len(chunk)
                if size > limit:
                    return _closing(413, f"the body is larger than {limit} bytes")
                chunks.append(chunk)
    except TimeoutError:
        return _closing(408, f"the body did not arrive within {timeout:g} s")
    return b"".join(chunks)


def _closing(status: int, text: str) -> web.Response:
    response = web.Response(status=status, text=f"{status}: {text}\n")
    response.force_close()
    return response


__all__ = ["SERVER_HEADER", "Server", "read_body"]
