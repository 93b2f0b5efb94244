"""udev events about disks (``udevadm monitor --udev --property``) as attachments.

``udevadm monitor --property`` prints one block per event: a header
``UDEV  [12345.678901] add      /devices/.../block/sdb (block)`` (``KERNEL[...]``
for raw kernel uevents), then ``KEY=VALUE`` lines, then a blank line. The time
in brackets is seconds since boot (CLOCK_MONOTONIC). Only whole disks matter
here (``SUBSYSTEM=block``, ``DEVTYPE=disk``); their ``add`` and ``remove`` events
bound an attachment, and the properties that udev's rules added give what
kernel lines lack for disks in a dock: ``ID_SERIAL_SHORT``, the full model
(``ID_MODEL_ENC``/``ID_MODEL``) and ``ID_BUS``. ``KERNEL`` and ``UDEV`` blocks of one
uevent (same ``SEQNUM``) are one event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from egress.records import Provenance
from egress.sources.drives_kernel import When

_HEADER = re.compile(r"^(UDEV|KERNEL)\s*\[\s*(\d+\.\d+)\]\s+(\w+)\s+(/\S*)\s+\(([\w-]+)\)$")
_BANNER = (
    "monitor will print the received events for:",
    "UDEV - the event which udev sends out after rule processing",
    "KERNEL - the kernel uevent",
)
_HCTL = re.compile(r"/(\d+:\d+:\d+:\d+)/block/")
_ENC = re.compile(rb"\\x([0-9a-fA-F]{2})")
_BUSES = ("usb", "ata", "scsi", "nvme")


class UdevVerdict(Enum):
    """What a udev-monitor line was to the parser."""

    USED = "used"
    OTHER = "other"
    MALFORMED = "malformed"


@dataclass(slots=True)
class UdevAttachment:
    """One disk between its udev ``add`` and ``remove`` (either may be missing)."""

    seq: int
    station: str | None
    device: str
    added: When | None
    removed: When | None
    serial: str | None
    model: str | None
    id_bus: str | None
    transport: str | None
    hctl: str | None
    seqnum: int | None
    provenance: Provenance


def decode_enc(value: str) -> str:
    """Undo udev's ``\\xNN`` escaping (``ID_MODEL_ENC``); the result is stripped."""
    raw = _ENC.sub(lambda m: bytes([int(m.group(1), 16)]), value.encode("utf-8", "replace"))
    return raw.decode("utf-8", "replace").strip()


def transport(devpath: str, id_bus: str | None) -> str | None:
    """The host-side bus of a disk: from its sysfs path, else from ``ID_BUS``.

    A SATA disk in a USB dock has ``ID_BUS=ata`` when udev could talk ATA to it
    through the bridge, but it hangs off a USB port: the path says ``usb``.
    """
    if "/usb" in devpath:
        return "usb"
    if "/nvme" in devpath:
        return "nvme"
    if re.search(r"/ata\d+/", devpath):
        return "ata"
    if id_bus in _BUSES:
        return id_bus
    if re.search(r"/host\d+/", devpath):
        return "scsi"
    return None


class UdevMonitorParser:
    """Turn the lines of one ``udevadm monitor --property`` dump into :class:`UdevAttachment` s.

    ``to_when`` turns a header's seconds-since-boot into a :class:`When`.
    Feed every line, then call :meth:`finish`; :attr:`attachments` then holds
    one entry per disk attachment, in the order they began.
    """

    def __init__(self, station: str | None, new_seq: Callable[[], int],
                 to_when: Callable[[float], When]) -> None:
        self.station = station
        self._new_seq = new_seq
        self._to_when = to_when
        self.attachments: list[UdevAttachment] = []
        self._open: dict[str, UdevAttachment] = {}
        self._block: dict[str, str] | None = None
        self._header: tuple[str, float, str, str, str] | None = None
        self._prov: Provenance | None = None

    def feed(self, text: str, prov: Provenance) -> UdevVerdict:
        """Take one line; a blank line ends the current event block."""
        if not text.strip():
            return self._end_block()
        m = _HEADER.match(text)
        if m is not None:
            verdict = self._end_block()
            self._header = (m.group(1), float(m.group(2)), m.group(3), m.group(4), m.group(5))
            self._block = {}
            self._prov = prov
            return verdict if verdict is UdevVerdict.MALFORMED else UdevVerdict.OTHER
        if self._block is None:
            if text.strip() in _BANNER:
                return UdevVerdict.OTHER
            return UdevVerdict.MALFORMED
        key, sep, value = text.partition("=")
        if not sep or not key or not re.fullmatch(r"[A-Za-z0-9_.]+", key):
            return UdevVerdict.MALFORMED
        self._block[key] = value
        return UdevVerdict.OTHER

    def finish(self) -> UdevVerdict:
        """End the input (a last block needs no blank line after it)."""
        return self._end_block()

    def _end_block(self) -> UdevVerdict:
        block, header, prov = self._block, self._header, self._prov
        self._block = self._header = self._prov = None
        if block is None or header is None or prov is None:
            return UdevVerdict.OTHER
        source, mono, action, devpath, subsystem = header
        if subsystem != "block" or block.get("DEVTYPE", "disk") != "disk":
            return UdevVerdict.OTHER
        devname = block.get("DEVNAME") or devpath.rsplit("/", 1)[-1]
        device = devname.removeprefix("/dev/")
        when = self._to_when(mono)
        seqnum = int(block["SEQNUM"]) if block.get("SEQNUM", "").isdigit() else None
        id_bus = block.get("ID_BUS") or None
        model = (decode_enc(block["ID_MODEL_ENC"]) if "ID_MODEL_ENC" in block
                 else block.get("ID_MODEL")) or None
        hctl = _HCTL.search(devpath)
        att = self._open.get(device)
        if action == "add":
            if att is None or att.seqnum is None or att.seqnum != seqnum:
                att = UdevAttachment(
                    seq=self._new_seq(), station=self.station, device=device, added=when,
                    removed=None, serial=None, model=None, id_bus=None, transport=None,
                    hctl=hctl.group(1) if hctl else None, seqnum=seqnum, provenance=prov)
                self.attachments.append(att)
                self._open[device] = att
            elif source == "UDEV":
                att.added = when  # the processed event, after rules ran
        elif action == "remove":
            if att is None:  # added before the monitor started
                att = UdevAttachment(
                    seq=self._new_seq(), station=self.station, device=device, added=None,
                    removed=when, serial=None, model=None, id_bus=None, transport=None,
                    hctl=hctl.group(1) if hctl else None, seqnum=None, provenance=prov)
                self.attachments.append(att)
            elif att.removed is None:
                att.removed = when
            self._open.pop(device, None)
        elif action == "change" and att is not None:
            pass  # may carry the ID_* properties a first probe missed
        else:
            return UdevVerdict.OTHER
        att.serial = att.serial or block.get("ID_SERIAL_SHORT") or None
        att.model = att.model or model
        att.id_bus = att.id_bus or id_bus
        att.transport = att.transport or transport(devpath, id_bus)
        return UdevVerdict.USED
