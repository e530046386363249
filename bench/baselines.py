"""Baseline FastAGI servers, each running the stock 6-command session.

The session every baseline runs: read the header block, ``GET VARIABLE CALLERID(num)``,
then five ``SET VARIABLE``. That is what a typical FastAGI router built on these servers
does per call, and what the router does in one command.

* ``panoramisk``: panoramisk's FastAGI ``Application`` behind ``asyncio.start_server``, as
  its documentation shows it (optionally on uvloop);
* ``minimal``: the smallest hand-written asyncio-streams server that does the same;
* ``threads``: a thread-per-call ``socketserver``, the model of thread-based AGI servers.

And one that is not a baseline but a yardstick: ``null``, a server that does no work at
all -- it waits for the header block, writes one fixed ``EXEC MSet`` line, and closes on
the reply: the router's one-round-trip conversation at the cost of the event loop and the
kernel alone. What the load generator measures against it is the most this machine and
this load generator can show for any server (its p99 at 200 channels above all).

Run as a process: ``python -m bench.baselines KIND PORT [--uvloop] [--backlog N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import socketserver
import sys

SCRIPT = "bench"
_SETS = [f'SET VARIABLE BENCH_{n} "value {n}"\n'.encode() for n in range(5)]


async def _panoramisk(port: int, backlog: int) -> None:
    from panoramisk.fast_agi import Application  # noqa: PLC0415

    async def session(request: object) -> None:
        await request.send_command("GET VARIABLE CALLERID(num)")  # type: ignore[attr-defined]
        for n in range(5):
            await request.send_command(f'SET VARIABLE BENCH_{n} "value {n}"')  # type: ignore[attr-defined]

    app = Application()
    app.add_route(SCRIPT, session)
    server = await asyncio.start_server(app.handler, "127.0.0.1", port, backlog=backlog)
    async with server:
        await server.serve_forever()


async def _minimal(port: int, backlog: int) -> None:
    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\n\n")
            writer.write(b"GET VARIABLE CALLERID(num)\n")
            await reader.readline()
            for line in _SETS:
                writer.write(line)
                await reader.readline()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(session, "127.0.0.1", port, backlog=backlog)
    async with server:
        await server.serve_forever()


_NULL_ANSWER = (
    b"EXEC MSet SMARTROUTING_STATUS=AGENT,SMARTROUTING_REASON=sticky,SMARTROUTING_AGENT=104,"
    b"SMARTROUTING_DESTINATIONS=207&209&214&216,SMARTROUTING_SOURCE=local\n"
)


class _Null(asyncio.Protocol):
    """The router's conversation with nothing behind it: header block in, one fixed
    answer out, closed on its reply."""

    def __init__(self) -> None:
        self.buffer = b""
        self.answered = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.buffer += data
        if not self.answered:
            if b"\n\n" in self.buffer:
                self.answered = True
                self.buffer = b""
                self.transport.write(_NULL_ANSWER)
        elif b"\n" in self.buffer:
            self.transport.close()


async def _null(port: int, backlog: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        _Null, "127.0.0.1", port, backlog=backlog
    )
    async with server:
        await server.serve_forever()


class _ThreadHandler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        while self.rfile.readline() not in (b"\n", b""):
            pass
        self.wfile.write(b"GET VARIABLE CALLERID(num)\n")
        self.rfile.readline()
        for line in _SETS:
            self.wfile.write(line)
            self.rfile.readline()


class _ThreadServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("kind", choices=["panoramisk", "minimal", "threads", "null"])
    parser.add_argument("port", type=int)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--backlog", type=int, default=100)
    args = parser.parse_args()
    if args.kind == "threads":
        _ThreadServer.request_queue_size = args.backlog
        with _ThreadServer(("127.0.0.1", args.port), _ThreadHandler) as server:
            server.serve_forever()
        return
    if args.uvloop:
        import uvloop  # noqa: PLC0415

        uvloop.install()
    run = {"panoramisk": _panoramisk, "minimal": _minimal, "null": _null}[args.kind]
    try:
        asyncio.run(run(args.port, args.backlog))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
