"""Kernel messages about drives, correlated into attachments (one station, in log order).

A :class:`KernelTracker` is fed the message text of kernel log lines (the
timestamp and syslog/journal wrapping already removed by
:mod:`egress.sources.drives`) and keeps, per station, what ties the lines of one
drive together:

* a USB device is announced on a port path (``usb 2-1: new SuperSpeed USB device
  number 3 using xhci_hcd``) with its Product/Manufacturer/SerialNumber strings;
* a SCSI host is bound to that port by ``usb-storage`` (``scsi host6: usb-storage
  2-1:1.0``, which names the port) or by ``uas`` (``scsi host6: uas``, which does
  not: it is bound to the most recent USB device not yet bound, announced at most
  :data:`UAS_BIND_WINDOW_S` seconds before);
* the SCSI scan names the device H:C:T:L with vendor/model (``scsi 6:0:0:0:
  Direct-Access ...``) and ``sd H:C:T:L: [sdX] ...`` lines give it its block
  name, capacity and ``Attached SCSI disk``;
* libata names the full model of a SATA disk (``ata5.00: ATA-11: MODEL, FW, ...``),
  which the SCSI inquiry string truncates to 16 characters;
* a detach is a ``USB disconnect`` of the port (or of a hub above it), or the
  disk's ``Synchronizing SCSI cache`` / ``Stopping disk`` (undone by a later
  ``Starting disk``, as after a suspend).

Lines about anything else are normal in a kernel log and are left alone; only
lines that look like one of the drive lines above but do not parse are reported
as malformed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum

from egress.records import Provenance

UAS_BIND_WINDOW_S = 30.0
"""Longest gap between a USB device's announcement and the ``uas`` host line bound to it."""


class Verdict(Enum):
    """What a kernel message was to the tracker."""

    USED = "used"            # changed what is known about a drive
    OTHER = "other"          # about something else (or a drive line with nothing to add)
    MALFORMED = "malformed"  # looks like a drive line but does not parse


@dataclass(frozen=True, slots=True)
class When:
    """A log time: wall clock (UTC) and/or seconds since boot (printk clock), each maybe unset."""

    wall: datetime | None
    mono: float | None


NO_TIME = When(None, None)


def _before(a: When, b: When) -> bool:
    if a.wall is not None and b.wall is not None:
        return a.wall < b.wall
    return a.mono is not None and b.mono is not None and a.mono < b.mono


def gap_s(a: When, b: When) -> float | None:
    """Seconds between ``a`` and ``b``: on the wall clock if both have it, else since boot."""
    if a.wall is not None and b.wall is not None:
        return abs((a.wall - b.wall).total_seconds())
    if a.mono is not None and b.mono is not None:
        return abs(a.mono - b.mono)
    return None


@dataclass(slots=True)
class UsbDevice:
    """A USB device on a port path, from ``usb PORT: ...`` lines."""

    port: str
    number: int
    speed: str
    seen: When
    provenance: Provenance
    order: int
    product: str | None = None
    manufacturer: str | None = None
    serial: str | None = None
    host: int | None = None


@dataclass(slots=True)
class ScsiDevice:
    """A SCSI device from its scan line: type, and the inquiry vendor/model/revision."""

    hctl: str
    kind: str
    vendor: str | None
    model: str | None
    revision: str | None
    seen: When
    provenance: Provenance


@dataclass(slots=True)
class Attachment:
    """One drive's stay at a station as the kernel told it (mutable while lines arrive)."""

    seq: int
    station: str | None
    device: str
    attached: When
    provenance: Provenance
    hctl: str | None = None
    usb: UsbDevice | None = None
    scsi: ScsiDevice | None = None
    ata_model: str | None = None
    nvme: bool = False
    capacity_bytes: int | None = None
    detached: When | None = None
    detach_final: bool = False
    devlink_serial: str | None = field(default=None)


_PORT = r"\d+-\d+(?:\.\d+)*"
_USB_NEW = re.compile(rf"^usb ({_PORT}): new (.+?) USB device number (\d+) using \S+$")
_USB_NEW_OLD = re.compile(rf"^usb ({_PORT}): new (.+?) USB device using \S+ and address (\d+)$")
_USB_STRING = re.compile(rf"^usb ({_PORT}): (Product|Manufacturer|SerialNumber): ?(.*)$")
_USB_GONE = re.compile(rf"^usb ({_PORT}): USB disconnect, (?:device number|address) (\d+)$")
_HOST_USB = re.compile(rf"^scsi ?host(\d+) ?: usb-storage ({_PORT}):\d+\.\d+$")
_HOST_USB_OLD = re.compile(rf"^scsi(\d+) ?: usb-storage ({_PORT}):\d+\.\d+$")
_HOST_UAS = re.compile(r"^scsi host(\d+): uas$")
_HOST_OTHER = re.compile(r"^scsi host(\d+): \S")
_SCSI_SCAN = re.compile(r"^scsi (\d+:\d+:\d+:\d+): (\S.*?) PQ: \d+ ANSI: \d+")
_SD = re.compile(r"^sd (\d+:\d+:\d+:\d+): \[(sd[a-z]+)\] (.*)$")
_CAPACITY = re.compile(r"^(\d+) (\d+)-byte logical blocks: \([^/()]+/[^/()]+\)$")
_ATA_MODEL = re.compile(r"^(ata\d+\.\d+): ATA-\d+: (.+), ([^,]+), max \S")
_NVME_PROBE = re.compile(r"^nvme (nvme\d+): pci function \S+$")
_NVME_NS = re.compile(r"^(nvme\d+)(n\d+): ")
_NVME_GONE = re.compile(r"^nvme (nvme\d+): Removing after probe failure")

# sd messages printed while a disk is first scanned: they may start an attachment.
_ATTACH_PHASE = (
    "-byte logical blocks", "-byte physical blocks", "Write Protect is", "Mode Sense:",
    "Write cache:", "Attached SCSI", "Spinning up disk", "Very big device",
    "Preferred minimum I/O size", "Optimal transfer size", "Assuming drive cache",
    "No Caching mode page", "Asking for cache data failed", "Unsupported sector size",
    "Media removed",
)
_DETACH_PHASE = ("Synchronizing SCSI cache", "Stopping disk")

LOOKS_LIKE_DRIVE = (
    "-byte logical blocks", "Attached SCSI", "USB disconnect", "USB device number",
    " PQ: ", "Synchronizing SCSI cache",
)
"""Substrings that make a line look like one of the drive lines parsed here."""


def split_inquiry(text: str) -> tuple[str, str | None, str | None, str | None]:
    """Split a SCSI scan line's ``TYPE VENDOR MODEL REV`` into stripped parts (empty -> None).

    The kernel prints the type padded to 17 characters and the inquiry strings at
    their fixed widths (8, 16, 4), so a model may contain spaces; text that does
    not have that layout is split on whitespace instead (vendor first, revision
    last when there are four or more words).
    """
    if len(text) == 48 and text[17] == " " and text[26] == " " and text[43] == " ":
        parts = (text[:17], text[18:26], text[27:43], text[44:48])
        kind, vendor, model, rev = (p.strip() for p in parts)
        return kind, vendor or None, model or None, rev or None
    words = text.split()
    kind = words[0]
    rest = words[1:]
    if len(rest) >= 3:
        return kind, rest[0], " ".join(rest[1:-1]), rest[-1]
    if len(rest) == 2:
        return kind, rest[0], rest[1], None
    return kind, rest[0] if rest else None, None, None


def by_id_serial(links: list[str]) -> str | None:
    """Drive serial from udev ``/dev/disk/by-id`` links, preferring the drive's own (ata, nvme).

    udev names these links ``<bus>-<ID_SERIAL>`` and builds ``ID_SERIAL`` as
    ``<model>_<serial>`` (USB: ``<vendor>_<model>_<serial>-<lun>``), with spaces
    turned into ``_``; the serial is taken as the part after the last ``_``. Links
    with no ``_`` (wwn, eui) and partition links give nothing.
    """
    ranked: dict[str, str] = {}
    for link in links:
        if "/by-id/" not in link:
            continue
        name = link.rsplit("/", 1)[-1]
        bus, _, ident = name.partition("-")
        if bus not in ("ata", "nvme", "usb") or "-part" in ident or "_" not in ident:
            continue
        if bus == "usb":
            ident = re.sub(r"-\d+:\d+$", "", ident)
        serial = ident.rsplit("_", 1)[-1]
        if serial:
            ranked.setdefault(bus, serial)
    for bus in ("ata", "nvme", "usb"):
        if bus in ranked:
            return ranked[bus]
    return None


class KernelTracker:
    """Correlate one station's kernel messages, in log order, into :class:`Attachment` s.

    ``new_seq`` numbers attachments in creation order across trackers.
    :attr:`attachments` holds every attachment created, finished or not.
    """

    def __init__(self, station: str | None, new_seq: Callable[[], int]) -> None:
        self.station = station
        self._new_seq = new_seq
        self.attachments: list[Attachment] = []
        self._usb: dict[str, UsbDevice] = {}
        self._order = 0
        self._host_usb: dict[int, UsbDevice] = {}
        self._scsi: dict[str, ScsiDevice] = {}
        self._ata: dict[str, tuple[str, int]] = {}
        self._disks: dict[str, Attachment] = {}
        self._last_mono: float | None = None

    def reset(self) -> None:
        """Forget device state at a boot boundary; attachments still open stay undetached."""
        self._usb.clear()
        self._host_usb.clear()
        self._scsi.clear()
        self._ata.clear()
        self._disks.clear()
        self._last_mono = None

    def feed(self, msg: str, when: When, prov: Provenance) -> Verdict:
        """Take one kernel message; say whether it was used, about something else, or malformed."""
        if when.mono is not None:
            if self._last_mono is not None and when.mono + 1.0 < self._last_mono:
                self.reset()  # the printk clock went back: a new boot
            self._last_mono = when.mono
        if msg.startswith("Linux version "):
            self.reset()
            return Verdict.OTHER
        verdict: Verdict | None = None
        if msg.startswith("sd "):
            verdict = self._sd(msg, when, prov)
        elif msg.startswith("usb "):
            verdict = self._usb_line(msg, when, prov)
        elif msg.startswith("scsi"):
            verdict = self._scsi_line(msg, when, prov)
        elif msg.startswith("ata"):
            verdict = self._ata_line(msg)
        elif msg.startswith("nvme"):
            verdict = self._nvme_line(msg, when, prov)
        if verdict is not None:
            return verdict
        if any(s in msg for s in LOOKS_LIKE_DRIVE):
            return Verdict.MALFORMED
        return Verdict.OTHER

    def note_devlinks(self, devnode: str, links: list[str]) -> bool:
        """Take the serial from a journal entry's ``_UDEV_DEVLINK`` s for the open ``devnode``."""
        att = self._disks.get(devnode.removeprefix("/dev/"))
        serial = by_id_serial(links)
        if att is None or serial is None or att.detach_final:
            return False
        att.devlink_serial = serial
        return True

    # ------------------------------------------------------------------ usb

    def _usb_line(self, msg: str, when: When, prov: Provenance) -> Verdict | None:
        m = _USB_NEW.match(msg) or _USB_NEW_OLD.match(msg)
        if m is None:
            return self._usb_other(msg, when)
        port, speed, number = m.group(1), m.group(2), int(m.group(3))
        self._order += 1
        self._usb[port] = UsbDevice(port=port, number=number, speed=speed, seen=when,
                                    provenance=prov, order=self._order)
        return Verdict.USED

    def _usb_other(self, msg: str, when: When) -> Verdict | None:
        m = _USB_STRING.match(msg)
        if m is not None:
            dev = self._usb.get(m.group(1))
            if dev is None:
                return Verdict.OTHER
            value = m.group(3).strip() or None
            if m.group(2) == "Product":
                dev.product = value
            elif m.group(2) == "Manufacturer":
                dev.manufacturer = value
            else:
                dev.serial = value
            return Verdict.USED
        m = _USB_GONE.match(msg)
        if m is None:
            return None
        return self._usb_gone(m.group(1), when)

    def _usb_gone(self, port: str, when: When) -> Verdict:
        def under(p: str) -> bool:
            return p == port or p.startswith(port + ".")

        used = False
        for att in self._disks.values():
            if att.usb is not None and under(att.usb.port) and not att.detach_final:
                if att.detached is None:
                    att.detached = when
                att.detach_final = True
                used = True
        for p in [p for p in self._usb if under(p)]:
            del self._usb[p]
            used = True
        for h in [h for h, d in self._host_usb.items() if under(d.port)]:
            del self._host_usb[h]
        return Verdict.USED if used else Verdict.OTHER

    # ----------------------------------------------------------------- scsi

    def _scsi_line(self, msg: str, when: When, prov: Provenance) -> Verdict | None:
        m = _HOST_USB.match(msg) or _HOST_USB_OLD.match(msg)
        if m is not None:
            dev = self._usb.get(m.group(2))
            if dev is None:
                return Verdict.OTHER
            dev.host = int(m.group(1))
            self._host_usb[dev.host] = dev
            return Verdict.USED
        m = _HOST_UAS.match(msg)
        if m is not None:
            return self._bind_uas(int(m.group(1)), when)
        m = _HOST_OTHER.match(msg)
        if m is not None:
            self._host_usb.pop(int(m.group(1)), None)  # host number now used by another driver
            return Verdict.OTHER
        m = _SCSI_SCAN.match(msg)
        if m is None:
            return None
        kind, vendor, model, rev = split_inquiry(m.group(2))
        hctl = m.group(1)
        self._scsi[hctl] = ScsiDevice(hctl=hctl, kind=kind, vendor=vendor, model=model,
                                      revision=rev, seen=when, provenance=prov)
        return Verdict.USED if kind.startswith("Direct-Access") else Verdict.OTHER

    def _bind_uas(self, host: int, when: When) -> Verdict:
        candidates = [d for d in self._usb.values() if d.host is None]
        if not candidates:
            return Verdict.OTHER
        dev = max(candidates, key=lambda d: d.order)
        gap = gap_s(dev.seen, when)
        if gap is not None and gap > UAS_BIND_WINDOW_S:
            return Verdict.OTHER
        dev.host = host
        self._host_usb[host] = dev
        return Verdict.USED

    def _ata_line(self, msg: str) -> Verdict | None:
        m = _ATA_MODEL.match(msg)
        if m is None:
            return None
        self._order += 1
        self._ata[m.group(1)] = (m.group(2).strip(), self._order)
        return Verdict.USED

    def _nvme_line(self, msg: str, when: When, prov: Provenance) -> Verdict | None:
        m = _NVME_PROBE.match(msg)
        if m is not None:
            ctrl = m.group(1)
            self._close(ctrl)
            self._start(ctrl, when, prov, nvme=True)
            return Verdict.USED
        m = _NVME_NS.match(msg)
        if m is not None:
            ctrl, ns = m.group(1), m.group(1) + m.group(2)
            att = self._disks.get(ctrl)
            if att is None or att.device != ctrl:
                return Verdict.OTHER
            del self._disks[ctrl]
            att.device = ns
            self._disks[ns] = att
            return Verdict.USED
        m = _NVME_GONE.match(msg)
        if m is not None:
            ctrl = m.group(1)
            for att in self._disks.values():
                if att.nvme and att.device.startswith(ctrl) and att.detached is None:
                    att.detached = when
                    att.detach_final = True
                    return Verdict.USED
            return Verdict.OTHER
        return None

    # ------------------------------------------------------------------- sd

    def _sd(self, msg: str, when: When, prov: Provenance) -> Verdict:
        m = _SD.match(msg)
        if m is None:
            if re.match(r"^sd \d+:\d+:\d+:\d+: ", msg) is None and any(
                    s in msg for s in LOOKS_LIKE_DRIVE):
                return Verdict.MALFORMED
            return Verdict.OTHER  # e.g. "sd 6:0:0:0: Attached scsi generic sg2 type 0"
        hctl, dev, rest = m.groups()
        capacity: int | None = None
        if "-byte logical blocks" in rest:
            cm = _CAPACITY.match(rest)
            if cm is None:
                return Verdict.MALFORMED
            capacity = int(cm.group(1)) * int(cm.group(2))
        attach_phase = any(s in rest for s in _ATTACH_PHASE)
        detach_phase = any(s in rest for s in _DETACH_PHASE)
        att = self._disks.get(dev)
        if att is not None and (att.hctl != hctl or (att.detached is not None and attach_phase)):
            if not (attach_phase or detach_phase):
                return Verdict.OTHER
            self._close(dev)
            att = None
        if att is None:
            if attach_phase:
                att = self._start_sd(hctl, dev, when, prov)
            elif detach_phase:  # attached before this log began
                att = self._start(dev, NO_TIME, prov, hctl=hctl)
            else:
                return Verdict.OTHER
        if capacity is not None:
            att.capacity_bytes = capacity
        if detach_phase and att.detached is None:
            att.detached = when
        elif "Starting disk" in rest and att.detached is not None and not att.detach_final:
            att.detached = None  # resumed: the cache flush was a suspend, not a removal
        return Verdict.USED

    def _start(self, device: str, when: When, prov: Provenance, *, hctl: str | None = None,
               nvme: bool = False) -> Attachment:
        att = Attachment(seq=self._new_seq(), station=self.station, device=device,
                         attached=when, provenance=prov, hctl=hctl, nvme=nvme)
        if hctl is not None:
            att.scsi = self._scsi.get(hctl)
            att.usb = self._host_usb.get(int(hctl.split(":", 1)[0]))
        self.attachments.append(att)
        self._disks[device] = att
        return att

    def _start_sd(self, hctl: str, dev: str, when: When, prov: Provenance) -> Attachment:
        att = self._start(dev, when, prov, hctl=hctl)
        # The drive arrived with the earliest line that can be tied to it.
        for seen, where in [(d.seen, d.provenance) for d in (att.scsi, att.usb) if d is not None]:
            if _before(seen, att.attached):
                att.attached, att.provenance = seen, where
        scsi = att.scsi
        if scsi is not None and scsi.vendor == "ATA" and scsi.model:
            matches = [(order, model) for model, order in self._ata.values()
                       if model.startswith(scsi.model)]
            if matches:
                att.ata_model = max(matches)[1]
        return att

    def _close(self, device: str) -> None:
        self._disks.pop(device, None)
