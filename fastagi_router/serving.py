"""``fastagi-router serve``: one process, or a supervisor and ``workers`` FastAGI processes.

One process (``workers = 1``, the default) runs everything: FastAGI, the REST API, the
Manager listener.

With ``workers = N`` (N > 1), Python's one-core-per-process limit is lifted: the supervisor
binds the FastAGI socket once and starts N worker processes that inherit it and accept
calls from it (the kernel hands each connection to one of them); the supervisor itself runs
the REST API and the Manager listener, so that exactly one process learns, and serves
``/metrics`` summed over every worker (each writes a snapshot of its counters every second
into a private directory; a worker that restarts starts its counters from zero, which
Prometheus reads as a counter reset). A worker that dies is restarted with a growing delay.

What every worker keeps to itself: the hot-number layer, the fast-path decisions, the
upstream single-flight and circuit breaker, and the code-attempt limits. What they share:
the store (a change applies to the very next call in every worker: each reads the
WAL-index header of the ``-shm`` file before answering from memory) and the upstream cache
table.

Signals: SIGTERM and SIGINT stop accepting, let calls in progress finish (up to their
deadline), then exit. SIGHUP reloads the configuration (file, environment, flags) and
applies what can change live (`config.RELOADABLE`); a configuration that does not load is
refused with the old one kept; the supervisor passes SIGHUP on to its workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import glob
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from typing import Any

from fastagi_router import __version__
from fastagi_router.config import Settings, parse_hostport
from fastagi_router.errors import ConfigError, RouterError
from fastagi_router.metrics import Metrics, Snapshot

log = logging.getLogger("fastagi_router.serve")

SNAPSHOT_INTERVAL = 1.0
_RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)

Loader = Callable[[], Settings]


def raise_fd_limit() -> None:
    """Raise this process's open-file limit to the hard limit: every call is a socket, and
    the common soft limit (1024) is below agi.max_sessions' default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _listen_socket(settings: Settings) -> socket.socket:
    """Bind the FastAGI address once, for every worker to accept from."""
    host, port = parse_hostport(settings.agi.listen, "agi.listen")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(settings.agi.backlog)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {settings.agi.listen}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


def _reload(app: Any, load: Loader) -> None:
    """Load the configuration again and apply it; a bad one is refused, the old one kept."""
    try:
        new = load()
        restart = app.reload(new)
    except (ConfigError, RouterError) as exc:
        log.error("SIGHUP: configuration refused, keeping the running one: %s", exc)
        return
    log.info("SIGHUP: configuration reloaded")
    if restart:
        log.warning("SIGHUP: these settings changed but need a restart: %s", ", ".join(restart))


def settle_heap() -> int:
    """Set what start-up made aside from the cyclic garbage collector (`gc.freeze`);
    return how many objects that was.

    Modules, settings, the store, the application live as long as the process. Left in
    the collector's oldest generation, every full collection walked all of them: 12-14 ms
    on a started router, during which every call waits, and at 200 calls in progress the
    queue that builds up takes far longer to drain. Set aside, a full collection walks only
    what calls left behind (0.1 ms). They are still freed by reference counting; what
    start-up made and a reload later replaces is only kept if it was in a reference cycle.
    """
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


async def _until_stopped(
    app: Any, load: Loader, on_reload: Callable[[], None] | None = None
) -> None:
    log.debug("start-up heap set aside from the cyclic GC: %d objects", settle_heap())
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def hup() -> None:
        _reload(app, load)
        if on_reload is not None:
            on_reload()

    loop.add_signal_handler(signal.SIGHUP, hup)
    await stop.wait()


async def serve_one(settings: Settings, load: Loader) -> int:
    """Run everything in this process until SIGTERM or SIGINT."""
    from fastagi_router.app import Application  # noqa: PLC0415

    try:
        app = await Application.start(settings)
    except OSError as exc:
        raise ConfigError(f"cannot listen: {exc.strerror or exc}") from exc
    log.info("fastagi-router %s serving with store %s", __version__, settings.db)
    await _until_stopped(app, load)
    log.info("stopping: no new calls; letting calls in progress finish")
    await app.stop()
    return 0


async def serve_worker(
    settings: Settings, load: Loader, fd: int, index: int, metrics_dir: str
) -> int:
    """A worker: FastAGI only, on the inherited socket ``fd``; writes metric snapshots."""
    from fastagi_router.app import Application  # noqa: PLC0415

    def worker_settings(base: Settings) -> Settings:
        # The supervisor runs the REST API and the one Manager listener.
        return dataclasses.replace(
            base,
            http=dataclasses.replace(base.http, enabled=False),
            ami=dataclasses.replace(base.ami, host=""),
        )

    sock = socket.socket(fileno=fd)
    # The supervisor purges expired data: N workers would purge the same rows N times.
    app = await Application.start(worker_settings(settings), agi_socket=sock, purge=False)
    path = os.path.join(metrics_dir, f"worker-{index}.json")

    def write_snapshot() -> None:
        with contextlib.suppress(OSError):
            temporary = f"{path}.{os.getpid()}.tmp"
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(app.metrics.snapshot(), handle)
            os.replace(temporary, path)

    async def snapshots() -> None:
        while True:
            write_snapshot()
            await asyncio.sleep(SNAPSHOT_INTERVAL)

    task = asyncio.get_running_loop().create_task(snapshots())
    log.info("worker %d (pid %d) serving FastAGI", index, os.getpid())
    await _until_stopped(app, lambda: worker_settings(load()))
    await app.stop()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    write_snapshot()
    return 0


def _read_snapshots(directory: str) -> Iterable[Snapshot]:
    for path in sorted(glob.glob(os.path.join(directory, "worker-*.json"))):
        with contextlib.suppress(OSError, ValueError), open(path, encoding="utf-8") as handle:
            yield json.load(handle)


class _Workers:
    """Starts, watches and restarts the worker processes."""

    def __init__(self, count: int, argv: list[str], sock: socket.socket, metrics_dir: str):
        self.count = count
        self.argv = argv
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.failures: dict[int, int] = {}
        self.stopping = False

    def start(self, index: int) -> None:
        command = [
            sys.executable, "-m", "fastagi_router", "serve", *self.argv,
            "--worker-fd", str(self.sock.fileno()), "--worker-index", str(index),
            "--metrics-dir", self.metrics_dir,
        ]  # fmt: skip
        self.procs[index] = subprocess.Popen(command, pass_fds=(self.sock.fileno(),))  # noqa: S603
        log.info("started worker %d (pid %d)", index, self.procs[index].pid)

    def signal(self, sig: int) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)

    async def watch(self) -> None:
        """Restart any worker that exits while the supervisor is not stopping."""
        while not self.stopping:
            await asyncio.sleep(0.5)
            for index, proc in list(self.procs.items()):
                if self.stopping or proc.poll() is None:
                    continue
                failures = self.failures.get(index, 0)
                delay = _RESTART_DELAYS[min(failures, len(_RESTART_DELAYS) - 1)]
                self.failures[index] = failures + 1
                log.error(
                    "worker %d exited with %s; restarting in %.1f s", index, proc.returncode, delay
                )
                await asyncio.sleep(delay)
                if not self.stopping:
                    self.start(index)

    async def stop(self, grace: float) -> None:
        self.stopping = True
        self.signal(signal.SIGTERM)
        loop = asyncio.get_running_loop()
        end = loop.time() + grace
        # Polled: a child's exit is not an event this loop can wait on portably.
        while any(p.poll() is None for p in self.procs.values()) and loop.time() < end:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        for proc in self.procs.values():
            if proc.poll() is None:
                log.error("worker pid %d did not stop in time; killing it", proc.pid)
                proc.kill()
            proc.wait()


async def supervise(settings: Settings, load: Loader, argv: list[str]) -> int:
    """Run ``settings.workers`` FastAGI workers plus the REST API and Manager listener."""
    from fastagi_router.app import Application  # noqa: PLC0415

    sock = _listen_socket(settings)
    metrics_dir = tempfile.mkdtemp(prefix="fastagi-router-metrics-")
    workers = _Workers(settings.workers, argv, sock, metrics_dir)
    app: Any = None
    try:
        metrics = Metrics()
        metrics.include(lambda: _read_snapshots(metrics_dir))
        app = await Application.start(settings, serve_agi=False, metrics=metrics)
        for index in range(settings.workers):
            workers.start(index)
        watcher = asyncio.get_running_loop().create_task(workers.watch())
        log.info(
            "fastagi-router %s: %d workers on %s, store %s",
            __version__, settings.workers, settings.agi.listen, settings.db,
        )  # fmt: skip
        await _until_stopped(app, load, on_reload=lambda: workers.signal(signal.SIGHUP))
        log.info("stopping: no new calls; letting calls in progress finish")
        sock.close()
        grace = settings.deadline_ms / 1000 + settings.agi.reply_grace_ms / 1000 * 3 + 2
        await workers.stop(grace)
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    finally:
        if not workers.stopping:
            await workers.stop(1.0)
        if app is not None:
            await app.stop()
        sock.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
