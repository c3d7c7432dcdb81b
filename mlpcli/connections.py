"""How much of `mlp serve` one client may hold: uvicorn's HTTP protocol (httptools) with the
limits uvicorn leaves out. uvicorn's only timer runs between a response and the next request,
its header parser has no size limit, and once it holds LIMIT connections it answers every new
request with a 503, so connections that send nothing, or a request a byte at a time, could
shut everyone else out for as long as they stay open. Here:
- a request's head must arrive within HEAD_SECONDS of its first byte (or of the connection),
  and the whole request within REQUEST_SECONDS; a client too slow is disconnected;
- a head larger than MAX_HEAD bytes is answered 431 and the connection closed;
- at LIMIT connections, a new one closes the connection that has waited longest for a
  request to arrive: only connections whose request is being answered are never closed;
- on shutdown (Ctrl-C), connections waiting for a request close at once.
"""

import asyncio
import time

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_SECONDS = 10.0
REQUEST_SECONDS = 60.0  # a body of serve.MAX_BODY at half a megabyte a second
MAX_HEAD = 64 * 2**10  # bytes of request line and headers; browsers send under 8 KiB
LIMIT = 256  # connections at once
TOO_LARGE_HEAD = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
)


class GuardedProtocol(HttpToolsProtocol):
    """One connection, as uvicorn's httptools protocol handles it, with the limits above.
    `waiting_since` is when it began to wait for a request (None while one is answered);
    `deadline` drops it unless what it waits for arrives in time; `stalled` drops it when its
    client has read nothing of an answer for REQUEST_SECONDS."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.head_bytes, self.in_head = 0, True
        self.waiting_since: float | None = None
        self.deadline: asyncio.TimerHandle | None = None
        self.stalled: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.waiting_since = time.monotonic()
        self._expect(HEAD_SECONDS)
        waiting = [c for c in self.connections if isinstance(c, GuardedProtocol) and c.waiting_since]
        if len(self.connections) > LIMIT and waiting:
            longest = min(waiting, key=lambda c: c.waiting_since)
            longest.transport.abort()  # not close(): that would wait to send what is buffered
            self.connections.discard(longest)  # now, not when it is gone: uvicorn counts them

    def data_received(self, data: bytes) -> None:
        if self.in_head:  # a head not yet whole: what the parser holds of it
            self.head_bytes += len(data)
        super().data_received(data)
        if self.in_head and self.head_bytes > MAX_HEAD:
            self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._expect(HEAD_SECONDS)

    def on_headers_complete(self) -> None:
        self.in_head, self.head_bytes = False, 0
        if len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers) > MAX_HEAD:
            self._refuse_head()  # a head that came whole in one read
            return
        self._expect(REQUEST_SECONDS)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True  # what comes next is the next request's head
        self._stop_expecting()
        if self.cycle is not None and not self.cycle.response_complete:
            self.waiting_since = None  # being answered
        else:  # answered before its body ended: the next request's wait
            self._expect(HEAD_SECONDS)

    def on_response_complete(self) -> None:
        super().on_response_complete()  # uvicorn's keep-alive timer now runs until the next byte
        if self.cycle is None or self.cycle.response_complete:  # no pipelined request started
            self.waiting_since = self.waiting_since or time.monotonic()

    def pause_writing(self) -> None:
        super().pause_writing()
        self.stalled = self.loop.call_later(REQUEST_SECONDS, self.transport.abort)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.stalled is not None:
            self.stalled.cancel()
            self.stalled = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_expecting()
        if self.stalled is not None:
            self.stalled.cancel()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self.waiting_since is not None:
            self.transport.abort()
        else:
            super().shutdown()

    def _refuse_head(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(TOO_LARGE_HEAD)
            self.transport.close()

    def _expect(self, seconds: float) -> None:
        """Drop the connection unless what it waits for arrives within `seconds`."""
        self._stop_expecting()
        self.deadline = self.loop.call_later(seconds, self.transport.abort)  # not close(): nothing waits

    def _stop_expecting(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
            self.deadline = None
