"""The inputs the sidecar feeds itself: MinIO webhook endpoints, journal and packet commands.

Each keeps its files under ``<state>/inputs/<name>/``. :class:`LiveInputs` starts them
(webhook servers at once, commands at the first tick), gives the followers of those
that land in files (the webhook's entry files, the journal's file), and stops them.
"""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from egress.sidecar.config import (
    JournalConfig,
    MinioWebhookConfig,
    PacketsConfig,
    SidecarConfig,
)
from egress.sidecar.follow import FileMark, Follower
from egress.sidecar.http import Metrics
from egress.sidecar.journal import JournalInput
from egress.sidecar.packets import PacketInput
from egress.sidecar.webhook import AuditStore, WebhookServer

log = logging.getLogger(__name__)


class LiveInputs:
    """The webhook, journal and packets inputs of one config (module doc)."""

    def __init__(self, config: SidecarConfig, metrics: Metrics) -> None:
        """Read the webhook tokens and bind the webhook endpoints.

        Raises :class:`~egress.errors.ConfigError` for a missing token; ``OSError`` when
        an address cannot be bound.
        """
        folder = config.state_directory / "inputs"
        self.stores: dict[str, AuditStore] = {}
        self.servers: dict[str, WebhookServer] = {}
        self.journals: dict[str, JournalInput] = {}
        self.packets: dict[str, PacketInput] = {}
        try:
            for spec in config.inputs:
                if isinstance(spec, MinioWebhookConfig):
                    token = spec.token()
                    if spec.token_file is not None:
                        _warn_if_readable(spec.name, spec.token_file)
                    store = self.stores[spec.name] = AuditStore(
                        folder / spec.name, rotate_bytes=spec.rotate_bytes)
                    self.servers[spec.name] = WebhookServer(
                        spec, store, token, count=_counter(metrics, spec.name))
                elif isinstance(spec, JournalConfig):
                    self.journals[spec.name] = JournalInput(spec, folder / spec.name)
                elif isinstance(spec, PacketsConfig):
                    self.packets[spec.name] = PacketInput(spec)
        except BaseException:
            self.close()
            raise

    def start(self, marks: Mapping[str, Mapping[str, FileMark]]) -> None:
        """Serve the webhooks; cut the journal files back to their committed marks."""
        for name, server in self.servers.items():
            server.start()
            log.info("%s: MinIO audit webhook on %s:%d", name, *server.address)
        self.recover(marks)

    def recover(self, marks: Mapping[str, Mapping[str, FileMark]]) -> None:
        """Cut the journal files back to the committed ``marks`` (their commands are
        stopped, and started again from the cursor kept at the next tick)."""
        for name, journal in self.journals.items():
            committed = 0
            for mark in marks.get(name, {}).values():
                if Path(mark.path) == journal.path:
                    committed = mark.size
            journal.reset(committed)

    def follower(self, name: str) -> Follower | None:
        """The follower of an input that lands in files; ``None`` for other inputs."""
        if name in self.stores:
            return Follower(self.stores[name].files)
        if name in self.journals:
            return Follower(self.journals[name].files, whole_file=True)
        if name in self.packets:
            return Follower(list)
        return None

    def discard_read(self, marks: Mapping[str, Mapping[str, FileMark]]) -> None:
        """Remove the webhook files read to their end in the committed ``marks``."""
        for name, store in self.stores.items():
            done = {Path(m.path): m.offset for m in marks.get(name, {}).values()}

            def read(path: Path, done: dict[Path, int] = done) -> bool:
                try:
                    return done.get(path) == path.stat().st_size
                except FileNotFoundError:
                    return False

            store.discard(read)

    def retire_commands(self) -> None:
        """Stop the journal and packet commands for good; what they printed until then
        (the final records of the flows still open) is taken by the next tick."""
        for journal in self.journals.values():
            journal.command.retire()
        for packets in self.packets.values():
            packets.command.retire()

    def close(self) -> None:
        """Stop the endpoints and the commands."""
        for server in self.servers.values():
            server.close()
        for store in self.stores.values():
            store.close()
        for journal in self.journals.values():
            journal.close()
        for packets in self.packets.values():
            packets.close()


def _counter(metrics: Metrics, name: str) -> Callable[[int], None]:
    def count(status: int) -> None:
        with metrics.lock:
            metrics.webhook[(name, status)] += 1

    return count


def _warn_if_readable(name: str, path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s: token_file %s can be read by other users (chmod 600 it)", name, path)
