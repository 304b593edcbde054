"""A TCP proxy on 127.0.0.1 in front of a real server (the tests' PostgreSQL), which a test can cut (the listening
socket closes and every connection through it is dropped: the database is unreachable) and restore (listening
again on the same port). Runs on the test's event loop.

It also counts the server's ReadyForQuery messages (`ready`): one each time a client waited for the server to finish
what it sent (a simple query, or a Sync of the extended protocol), whatever the packets."""

from __future__ import annotations

import asyncio
import contextlib


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0  # chosen at the first start, kept across cuts
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self.ready = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._links):
            writer.close()
        self._links.clear()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _link(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._links.update((client_writer, server_writer))
        await asyncio.gather(self._pipe(client_reader, server_writer),
                             self._pipe(server_reader, client_writer, _Messages(self)))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    messages: _Messages | None = None) -> None:
        try:
            while data := await reader.read(65536):
                if messages is not None:
                    messages.feed(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()


class _Messages:
    """The server's side of a link, split into protocol messages (a type byte, then a length that counts itself)."""

    def __init__(self, proxy: TcpProxy) -> None:
        self.proxy = proxy
        self.buffer = b""
        self.framed = False  # the answers to SSL and GSS requests are one byte ('N'), before the first message

    def feed(self, data: bytes) -> None:
        self.buffer += data
        if not self.framed:
            self.buffer = self.buffer.lstrip(b"N")
            self.framed = bool(self.buffer)
        while len(self.buffer) >= 5:
            end = 1 + int.from_bytes(self.buffer[1:5], "big")
            if len(self.buffer) < end:
                return
            if self.buffer[:1] == b"Z":
                self.proxy.ready += 1
            self.buffer = self.buffer[end:]
