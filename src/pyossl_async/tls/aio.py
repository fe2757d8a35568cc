"""TLS over asyncio streams, each connection driven by libssl's async fds or callback.

:func:`serve` and :func:`connect` give :class:`TLSStream` objects: a
:class:`~pyossl_async.tls.Connection` over memory BIOs plus the asyncio stream
that carries its bytes. Every call runs on the loop's thread (libssl resumes a
job only on the thread that started it). When a call returns ``Want.ASYNC``
(a private-key operation paused libssl's job), the stream's task waits for what
the operation registered, and the loop runs every other connection meanwhile:

* ``notify="callback"`` (default): ``SSL_set_async_callback``; the operation's
  engine (``pa.await_future``) calls it from the thread that completes the
  work, and it wakes the task through ``loop.call_soon_threadsafe``;
* ``notify="fd"``: no callback; the task waits until one of the paused job's
  fds (``SSL_get_all_async_fds``) is readable.

Either way a job paused with nothing to wait on (``pa.pause_job()`` alone) is
resumed at the loop's next iteration. Closing a stream whose job is paused
resumes it with ``JobCancelled`` pending (awaiting in between), then frees it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from typing import Any, Awaitable, Callable, Optional, Tuple

from .._constants import WaitStatus
from ._connection import Connection, Want
from ._context import Context

__all__ = ["NOTIFY_MODES", "TLSStream", "connect", "serve"]

NOTIFY_MODES = ("callback", "fd")
READ_SIZE = 65536


class TLSStream:
    """One TLS connection over an asyncio stream pair (see the module docstring)."""

    def __init__(
        self,
        connection: Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        notify: str = "callback",
    ) -> None:
        if notify not in NOTIFY_MODES:
            raise ValueError(f"notify must be one of {', '.join(map(repr, NOTIFY_MODES))}, not {notify!r}")
        self.connection = connection
        self._reader = reader
        self._writer = writer
        self._loop = asyncio.get_running_loop()
        self._buffer = bytearray()
        self._eof = False
        self._wake = asyncio.Event()
        self.notify = notify
        if notify == "callback":
            connection.set_async_callback(self._notified)

    # -- the callback, from whichever thread completes the operation
    def _notified(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass

    async def _drive(self, call: Callable[[], Tuple[Want, Any]]) -> Any:
        """Repeat ``call`` until it is done, feeding, flushing and waiting as it asks."""
        while True:
            self._wake.clear()
            want, result = call()
            await self._flush()
            if want is Want.DONE:
                return result
            if want is Want.READ:
                await self._receive()
            elif want is Want.ASYNC:
                await self._wait_async()
            elif want is Want.ASYNC_NO_JOBS:
                await asyncio.sleep(0.001)  # the thread's job pool is full: try again shortly
            # Want.WRITE: flushed above

    async def _flush(self) -> None:
        data = self.connection.take()
        if data:
            self._writer.write(data)
            await self._writer.drain()

    async def _receive(self) -> None:
        data = await self._reader.read(READ_SIZE)
        if data:
            self.connection.feed(data)
        else:
            self.connection.feed_eof()

    async def _wait_async(self, timeout: Optional[float] = None) -> None:
        """Until the paused job can be resumed: the callback, an fd, or (nothing to wait
        on) the loop's next iteration."""
        connection = self.connection
        if self.notify == "callback" and connection.async_status() == WaitStatus.OK:
            await self._await(self._wake.wait(), timeout)
            return
        fds = connection.async_fds()
        if not fds:
            await asyncio.sleep(0)
            return
        ready = self._loop.create_future()

        def fire() -> None:
            if not ready.done():
                ready.set_result(None)

        for fd in fds:
            self._loop.add_reader(fd, fire)
        try:
            await self._await(ready, timeout)
        finally:
            for fd in fds:  # before the resume: the engine closes its fds only after it
                self._loop.remove_reader(fd)

    @staticmethod
    async def _await(what: Awaitable[Any], timeout: Optional[float]) -> None:
        if timeout is None:
            await what
            return
        try:
            await asyncio.wait_for(what, timeout)
        except asyncio.TimeoutError:
            pass

    async def handshake(self) -> None:
        """Run the handshake to its end (``TLSEOFError`` if the peer goes away first)."""
        await self._drive(lambda: (self.connection.do_handshake(), None))

    async def read(self, size: int = READ_SIZE) -> bytes:
        """Up to ``size`` bytes of application data; ``b""`` at the end of the stream."""
        if self._buffer:
            out = bytes(self._buffer[:size])
            del self._buffer[:size]
            return out
        if self._eof:
            return b""
        data: bytes = await self._drive(lambda: self.connection.read(size))
        if not data:
            self._eof = True
        return data

    async def readline(self) -> bytes:
        """A line, with its ``\\n``; what is left at the end of the stream; ``b""`` after it."""
        while b"\n" not in self._buffer and not self._eof:
            data: bytes = await self._drive(lambda: self.connection.read(READ_SIZE))
            if not data:
                self._eof = True
            self._buffer += data
        end = self._buffer.find(b"\n")
        end = len(self._buffer) if end < 0 else end + 1
        line = bytes(self._buffer[:end])
        del self._buffer[:end]
        return line

    async def write(self, data: bytes) -> None:
        """Write all of ``data`` and flush it to the transport."""
        rest = bytes(data)
        while rest:
            written: int = await self._drive(functools.partial(self.connection.write, rest))
            rest = rest[written:]

    async def close(self, timeout: float = 5.0) -> None:
        """Send close_notify (when the handshake is done and nothing waits), close the
        transport and free the connection (a paused job is driven to its end first)."""
        connection = self.connection
        try:
            if not connection.closed:
                await self._end_job(timeout)
                if not connection.waiting_for_async and connection.version and not self._writer.is_closing():
                    try:
                        connection.shutdown()
                        await self._flush()
                    except Exception:  # noqa: BLE001 - the peer may be gone: closing anyway
                        pass
        finally:
            connection.close()
            self._writer.close()
            try:
                await self._writer.wait_closed()
            except (OSError, asyncio.CancelledError):
                pass

    async def _end_job(self, timeout: float) -> None:
        """Resume a paused job with JobCancelled pending until it ends, awaiting its engine
        in between (``Connection.close`` would do the same blocking the loop)."""
        connection = self.connection
        core = connection._core
        if not connection.waiting_for_async:
            return
        core.cancel()
        deadline = time.monotonic() + timeout
        while connection.waiting_for_async and time.monotonic() < deadline:
            core.resume_pending()
            if connection.waiting_for_async:
                await self._wait_async(timeout=0.05)

    @property
    def version(self) -> Optional[str]:
        return self.connection.version

    @property
    def cipher(self) -> Optional[str]:
        return self.connection.cipher

    @property
    def key_operations(self) -> int:
        return self.connection.key_operations

    @property
    def pauses(self) -> int:
        return self.connection.pauses

    def peername(self) -> Any:
        return self._writer.get_extra_info("peername")


async def serve(
    context: Context,
    handler: Callable[[TLSStream], Awaitable[None]],
    host: Optional[str] = "127.0.0.1",
    port: int = 0,
    *,
    notify: str = "callback",
    **kwargs: Any,
) -> asyncio.Server:
    """Accept TCP connections and hand each to ``handler`` as a :class:`TLSStream` (its
    handshake not yet run: ``await stream.handshake()``). The stream is closed when the
    handler returns, raises or is cancelled (a paused job is driven to its end first).
    ``kwargs`` go to ``asyncio.start_server``."""
    if not context.server_side:
        raise ValueError("serve() needs a server-side tls.Context")

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = TLSStream(Connection(context), reader, writer, notify=notify)
        try:
            await handler(stream)
        except asyncio.CancelledError:
            pass  # the server is shutting down: nobody awaits this task (asyncio would log it)
        finally:
            await stream.close()

    return await asyncio.start_server(on_client, host, port, **kwargs)


async def connect(
    host: str,
    port: int,
    context: Context,
    *,
    server_hostname: Optional[str] = None,
    notify: str = "callback",
) -> TLSStream:
    """Open a TCP connection and run a TLS handshake over it; the :class:`TLSStream`."""
    if context.server_side:
        raise ValueError("connect() needs a client-side tls.Context")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        stream = TLSStream(Connection(context, server_hostname=server_hostname or host), reader, writer, notify=notify)
    except BaseException:
        writer.close()
        raise
    try:
        await stream.handshake()
    except BaseException:
        await stream.close()
        raise
    return stream
