"""A child command whose stdout an input reads (``journalctl -f``, ``tcpdump -w -``).

:class:`Command` starts the command (no shell; stdin closed; its own process group), reads
its stdout in a daemon thread and hands every read to ``on_data`` in that thread, then
calls ``on_end`` with the exit status once stdout is closed and the process has exited
(so every byte was handed on before). Its stderr is logged line by line. A command that
cannot be started (not installed, not permitted) ends at once with status ``None``.
:meth:`Command.due` tells when a command that ended may be started again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO

log = logging.getLogger(__name__)

READ_BYTES = 1024 * 1024
STOP_WAIT_S = 5.0


class Command:
    """One command run at a time for the input ``name`` (module doc)."""

    def __init__(self, name: str, *, on_data: Callable[[bytes], None],
                 on_end: Callable[[int | None], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._on_data = on_data
        self._on_end = on_end
        self._clock = clock
        self._process: subprocess.Popen[bytes] | None = None
        self._threads: list[threading.Thread] = []
        self._running = False
        self._stopping = False
        self.retired = False
        """Set by :meth:`retire`: the command is not started again."""
        self.started = 0
        """How many times the command was started."""
        self.ended_at: float | None = None
        self.last_status: int | None = None
        self.last_argv: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        """Whether the command runs (its stdout not yet at its end)."""
        return self._running

    def due(self, restart_after_s: float | None) -> bool:
        """Whether to start the command now: never started, or ended long enough ago (and
        not retired)."""
        if self._running or self.retired:
            return False
        if self.started == 0:
            return True
        return (restart_after_s is not None and self.ended_at is not None
                and self._clock() - self.ended_at >= restart_after_s)

    def start(self, argv: Sequence[str]) -> None:
        """Run ``argv``; a command that cannot start is logged and ends at once."""
        if self._running:
            raise RuntimeError(f"{self.name}: the command runs already")
        self.started += 1
        self.last_argv = tuple(argv)
        self._running = True
        self._stopping = False
        try:
            process = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            log.error("%s: cannot run %s: %s", self.name, argv[0], exc.strerror or exc)
            self._ended(None)
            return
        log.info("%s: started %s (pid %d)", self.name, " ".join(argv), process.pid)
        self._process = process
        assert process.stdout is not None and process.stderr is not None
        self._threads = [
            threading.Thread(target=self._read, args=(process, process.stdout),
                             name=f"egress-{self.name}-stdout", daemon=True),
            threading.Thread(target=self._log_stderr, args=(process.stderr,),
                             name=f"egress-{self.name}-stderr", daemon=True)]
        for thread in self._threads:
            thread.start()

    def _read(self, process: subprocess.Popen[bytes], stdout: IO[bytes]) -> None:
        fd = stdout.fileno()
        try:
            while True:
                data = os.read(fd, READ_BYTES)
                if not data:
                    break
                self._on_data(data)
        except OSError as exc:
            log.warning("%s: reading the command's output failed: %s", self.name, exc)
        except Exception:
            log.exception("%s: the command's output could not be taken", self.name)
        finally:
            stdout.close()
            status = process.wait()
            self._ended(status)

    def _log_stderr(self, stderr: IO[bytes]) -> None:
        with stderr:
            for raw in stderr:
                text = raw.decode("utf-8", "replace").rstrip()
                if text:
                    log.info("%s: %s", self.name, text)

    def _ended(self, status: int | None) -> None:
        self.last_status = status
        self.ended_at = self._clock()
        try:
            self._on_end(status)
        finally:
            self._running = False
        if status and not self._stopping:
            log.warning("%s: the command ended with status %d", self.name, status)
        else:
            log.info("%s: the command ended (status %s)", self.name, status)

    def wait(self, timeout_s: float) -> bool:
        """Wait until the command's output is at its end; whether it is."""
        deadline = time.monotonic() + timeout_s
        while self._running and time.monotonic() < deadline:
            time.sleep(0.01)
        return not self._running

    def retire(self) -> None:
        """Stop the command for good (the sidecar is stopping)."""
        self.retired = True
        self.stop()

    def stop(self) -> None:
        """Stop the command (SIGTERM, then SIGKILL after :data:`STOP_WAIT_S`) and wait."""
        process = self._process
        self._stopping = True
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_WAIT_S)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for thread in self._threads:
            thread.join(STOP_WAIT_S)
        self._threads = []
        self._process = None
