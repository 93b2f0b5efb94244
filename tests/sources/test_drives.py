"""Drive attachments from kernel logs, the journal and udev dumps: exact records and issues.

The samples in ``tests/data/drives`` follow real kernel output line for line
(shapes taken from published dmesg/kern.log excerpts): a WD Elements 18 TB
desktop drive on ``uas``, a SATA disk hot-plugged into an AHCI bay with its udev
events, an 80 TB-class SAS target, a 4Kn disk in an ASMedia USB dock behind a
hub (``dmesg -T``), and a Seagate Expansion drive in ``journalctl -k -o json``
with ``MESSAGE`` as byte arrays. Capacities are logical blocks x block size.
"""

from __future__ import annotations

import gzip
import os
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from egress.errors import SourceError
from egress.records import DriveAttach, Issue, Provenance
from egress.sources.drives import DriveLogReader, detect_drive_log
from egress.sources.drives_kernel import by_id_serial, split_inquiry

DATA = Path(__file__).resolve().parent.parent / "data" / "drives"
WD_DMESG = DATA / "dmesg-wd-elements-18tb.txt"
DOCK_DMESG = DATA / "dmesg-T-asmedia-4k-dock.txt"
KERN_1 = DATA / "kern.log-station-1"
UDEV_1 = DATA / "udev-monitor-station-1.txt"
KERN_2 = DATA / "kern.log-station-2-rfc3339"
JOURNAL_3 = DATA / "journal-k-station-3.json"

BOOT_4 = datetime(2026, 11, 27, 2, 0, 0, tzinfo=UTC)     # station-4's boot (dmesg sample)
BOOT_1 = datetime(2026, 11, 27, 1, 24, 27, tzinfo=UTC)   # station-1's boot (kern.log + udev)
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)             # dates the yearless kern.log stamps


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def prov(path: Path, line: int) -> Provenance:
    return Provenance(path=str(path), line=line)


WD_18TB = DriveAttach(
    station="station-4", device="sdb", serial="575842314435324E", model="WD Elements 25A3",
    bus="usb", capacity_bytes=35156656128 * 512,
    attached=BOOT_4 + timedelta(seconds=8123.456789),
    detached=BOOT_4 + timedelta(seconds=9921.004512), provenance=prov(WD_DMESG, 14))
BOOT_NVME = DriveAttach(
    station="station-4", device="nvme0n1", serial=None, model=None, bus="nvme",
    capacity_bytes=None, attached=BOOT_4 + timedelta(seconds=2.318802), detached=None,
    provenance=prov(WD_DMESG, 3))
SATA_BAY = DriveAttach(
    station="station-1", device="sdb", serial="2TG0ABCD", model="WDC WD180EDGZ-11B2DA0",
    bus="ata", capacity_bytes=35156656128 * 512, attached=utc(2026, 11, 27, 4, 50, 12),
    detached=utc(2026, 11, 27, 9, 12, 40), provenance=prov(KERN_1, 10))
SAS_80TB = DriveAttach(
    station="station-2", device="sdd", serial=None, model="SEAGATE ST80000NM001J", bus="scsi",
    capacity_bytes=156250000000 * 512, attached=utc(2026, 11, 27, 6, 2, 11, 482113),
    detached=None, provenance=prov(KERN_2, 2))


def read(paths: list[Path], reader: DriveLogReader) -> tuple[
        list[DriveAttach], tuple[Issue, ...]]:
    records = list(reader.read(paths))
    return records, reader.issues


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize(("path", "kind"), [
    (WD_DMESG, "dmesg"), (DOCK_DMESG, "dmesg"), (KERN_1, "kern.log"), (KERN_2, "kern.log"),
    (JOURNAL_3, "journal-json"), (UDEV_1, "udev-monitor"),
    (DATA.parent / "copylogs" / "rsync-n-l.log", None),
])
def test_detect_drive_log(path: Path, kind: str | None) -> None:
    assert detect_drive_log(path) == kind


def test_detect_drive_log_reads_gzip(tmp_path: Path) -> None:
    gz = tmp_path / "kern.log.2.gz"
    gz.write_bytes(gzip.compress(KERN_2.read_bytes()))
    assert detect_drive_log(gz) == "kern.log"


def test_not_a_drive_log_raises_naming_the_file(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("nothing about drives here\n")
    with pytest.raises(SourceError, match=r"notes\.txt: not a drive log"):
        list(DriveLogReader().read([KERN_2, other]))
    with pytest.raises(SourceError, match=r"missing\.log: cannot open log"):
        list(DriveLogReader().read([tmp_path / "missing.log"]))


def test_aware_times_are_required() -> None:
    with pytest.raises(ValueError, match="boot_time must be timezone-aware"):
        DriveLogReader(boot_time=datetime(2026, 11, 27))
    with pytest.raises(ValueError, match="year_reference must be timezone-aware"):
        DriveLogReader(year_reference=datetime(2026, 11, 27))


# ----------------------------------------------------------------------------- dmesg


def test_wd_elements_18tb_on_uas_with_boot_time() -> None:
    records, issues = read([WD_DMESG], DriveLogReader(station="station-4", boot_time=BOOT_4))
    # The boot NVMe disk is an attachment too; the keyboard on 1-4 is not a drive.
    assert records == [BOOT_NVME, WD_18TB]
    assert issues == ()


def test_raw_dmesg_without_boot_time_keeps_times_unset_and_says_so() -> None:
    records, issues = read([WD_DMESG], DriveLogReader(station="station-4"))
    assert records == [
        replace(BOOT_NVME, attached=None),
        replace(WD_18TB, attached=None, detached=None),
    ]
    assert issues == (Issue(path=str(WD_DMESG), kind="relative_time_without_boot_time",
                            count=25, first_offset=366,
                            detail="line 3: pass boot_time to date these lines"),)


def test_dmesg_T_4k_dock_behind_a_hub_detached_with_the_hub() -> None:
    plus_one = timezone(timedelta(hours=1))
    records, issues = read([DOCK_DMESG], DriveLogReader(station="station-5", tz=plus_one))
    assert records == [DriveAttach(
        station="station-5", device="sdc", serial="30700000000000000A22",
        model="WDC WD40 EZRZ-00WN9B0", bus="usb", capacity_bytes=976754646 * 4096,
        attached=utc(2026, 11, 27, 6, 15, 3), detached=utc(2026, 11, 27, 7, 2, 41),
        provenance=prov(DOCK_DMESG, 8))]
    assert records[0].capacity_bytes == 4_000_787_030_016
    assert issues == ()


# ----------------------------------------------------------------------------- kern.log + udev


def test_sata_bay_with_udev_serial_and_80tb_sas_target() -> None:
    records, issues = read([KERN_1, UDEV_1, KERN_2],
                           DriveLogReader(boot_time=BOOT_1, year_reference=DECEMBER))
    assert records == [SATA_BAY, SAS_80TB]
    assert issues == ()


def test_udev_matches_on_the_boot_clock_without_boot_time() -> None:
    records, issues = read([KERN_1, UDEV_1], DriveLogReader(year_reference=DECEMBER))
    assert records == [SATA_BAY]
    assert issues == (Issue(path=str(UDEV_1), kind="relative_time_without_boot_time", count=2,
                            first_offset=1266,
                            detail="line 38: pass boot_time to date these events"),)


def test_kern_log_alone_has_no_serial_but_the_full_libata_model() -> None:
    records, issues = read([KERN_1], DriveLogReader(year_reference=DECEMBER))
    assert records == [replace(SATA_BAY, serial=None)]
    assert issues == ()


def test_udev_monitor_alone() -> None:
    records, issues = read([UDEV_1], DriveLogReader(station="station-1", boot_time=BOOT_1))
    assert records == [DriveAttach(
        station="station-1", device="sdb", serial="2TG0ABCD", model="WDC WD180EDGZ-11B2DA0",
        bus="ata", capacity_bytes=None, attached=BOOT_1 + timedelta(seconds=12346.102345),
        detached=BOOT_1 + timedelta(seconds=28093.412006), provenance=prov(UDEV_1, 12))]
    assert issues == ()


def test_yearless_stamps_cross_new_year(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text(
        "Dec 31 23:59:58 st kernel: [100.000000] scsi 2:0:0:0: Direct-Access     "
        "ATA      ST4000VN008-2DR1 SC60 PQ: 0 ANSI: 5\n"
        "Dec 31 23:59:59 st kernel: [100.500000] sd 2:0:0:0: [sdc] 7814037168 512-byte "
        "logical blocks: (4.00 TB/3.64 TiB)\n"
        "Jan  1 00:10:00 st kernel: [701.000000] sd 2:0:0:0: [sdc] Synchronizing SCSI cache\n")
    expected = [DriveAttach(
        station="st", device="sdc", serial=None, model="ST4000VN008-2DR1", bus="ata",
        capacity_bytes=7814037168 * 512, attached=utc(2026, 12, 31, 23, 59, 58),
        detached=utc(2027, 1, 1, 0, 10, 0), provenance=prov(log, 1))]
    assert read([log], DriveLogReader(year_reference=utc(2027, 1, 2))) == (expected, ())
    stamp = utc(2027, 1, 2).timestamp()
    os.utime(log, (stamp, stamp))  # by default the file's modification time dates them
    assert read([log], DriveLogReader()) == (expected, ())


# ----------------------------------------------------------------------------- journal


def test_journal_json_with_byte_array_messages_and_devlink_serial() -> None:
    records, issues = read([JOURNAL_3], DriveLogReader())
    assert records == [DriveAttach(
        station="station-3", device="sdb", serial="ZR5A01XY", model="Seagate Expansion Desk",
        bus="usb", capacity_bytes=15628053168 * 512,
        attached=utc(2026, 11, 27, 5, 10, 0, 101200),
        detached=utc(2026, 11, 27, 7, 30, 0, 1200), provenance=prov(JOURNAL_3, 1))]
    assert len(issues) == 1
    assert issues[0].kind == "malformed_json"
    assert issues[0].count == 1
    assert issues[0].detail.startswith('line 13: {"__CURSOR"')


# ----------------------------------------------------------------------------- bad input


def test_only_drive_lines_that_do_not_parse_are_issues(tmp_path: Path) -> None:
    log = tmp_path / "dmesg.txt"
    text = (
        "[   10.000000] usb 3-2: new high-speed USB device number 4 using xhci_hcd\n"
        "[   10.100000] usb 3-2: SerialNumber: AA00000000001\n"
        "[   10.200000] usb-storage 3-2:1.0: USB Mass Storage device detected\n"
        "[   10.200100] scsi host9: usb-storage 3-2:1.0\n"
        "[   10.300000] usbcore: registered new interface driver usb-storage\n"
        "[   11.000000] scsi 9:0:0:0: Direct-Access     Generic  Flash Disk       8.07 "
        "PQ: 0 ANSI: 4\n"
        "[   11.100000] sd 9:0:0:0: [sde] 30031872 512-byte logical blocks: (15.4 GB\n"
        "[   11.100100] sd 9:0:0:0: [sde] Write Protect is off\n"
        "[   11.200000] sd 9:0:0:0: [sde] Attached SCSI removable disk\n"
        "[   11.300000] random line that mentions nothing of interest\n"
        "[   12.000000] IPv6: ADDRCONF(NETDEV_CHANGE): enp3s0: link becomes ready\n")
    log.write_text(text)
    boot = utc(2026, 11, 27)
    records, issues = read([log], DriveLogReader(station="st", boot_time=boot))
    assert records == [DriveAttach(
        station="st", device="sde", serial="AA00000000001", model="Generic Flash Disk",
        bus="usb", capacity_bytes=None, attached=boot + timedelta(seconds=10),
        detached=None, provenance=prov(log, 1))]
    assert issues == (Issue(
        path=str(log), kind="malformed_drive_line", count=1,
        first_offset=text.index("[   11.100000]"),
        detail="line 7: [   11.100000] sd 9:0:0:0: [sde] 30031872 512-byte logical blocks: "
               "(15.4 GB"),)


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path) -> None:
    whole = gzip.compress(WD_DMESG.read_bytes())
    cut = tmp_path / "dmesg.txt.gz"
    cut.write_bytes(whole[: len(whole) - 200])
    records, issues = read([cut], DriveLogReader(station="station-4", boot_time=BOOT_4))
    assert [(r.device, r.capacity_bytes, r.detached) for r in records] == [
        ("nvme0n1", None, None), ("sdb", 35156656128 * 512, None)]
    assert [(i.kind, i.count) for i in issues] == [("truncated_gzip", 1)]
    assert issues[0].first_offset is not None and issues[0].first_offset > 0


def test_half_last_line_is_reported_not_parsed(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    text = KERN_2.read_text()
    log.write_text(text[: text.index("(80.0 TB/72.8 TiB)")])
    records, issues = read([log], DriveLogReader())
    assert [(r.device, r.capacity_bytes) for r in records] == []
    assert [(i.kind, i.first_offset) for i in issues] == [
        ("partial_last_line", text.index("2026-11-27T06:02:11.490777"))]


# ----------------------------------------------------------------------------- correlation


def test_suspend_resume_is_not_a_detach_and_a_reused_name_is_a_new_drive(tmp_path: Path) -> None:
    log = tmp_path / "dmesg.txt"
    log.write_text(
        "[  100.000000] scsi 2:0:0:0: Direct-Access     ATA      ST4000VN008-2DR1 SC60 "
        "PQ: 0 ANSI: 5\n"
        "[  100.100000] sd 2:0:0:0: [sdb] 7814037168 512-byte logical blocks: (4.00 TB/3.64 TiB)\n"
        "[  200.000000] sd 2:0:0:0: [sdb] Synchronizing SCSI cache\n"
        "[  200.100000] PM: suspend entry (deep)\n"
        "[  300.000000] sd 2:0:0:0: [sdb] Starting disk\n"
        "[  400.000000] sd 2:0:0:0: [sdb] Synchronizing SCSI cache\n"
        "[  400.000100] sd 2:0:0:0: [sdb] Stopping disk\n"
        "[  500.000000] usb 4-1: new SuperSpeed Gen 1 USB device number 2 using xhci_hcd\n"
        "[  500.100000] usb 4-1: Product: Portable SSD T7\n"
        "[  500.100100] usb 4-1: Manufacturer: Samsung\n"
        "[  500.200000] scsi host3: uas\n"
        "[  500.300000] scsi 3:0:0:0: Direct-Access     Samsung  PSSD T7          0    "
        "PQ: 0 ANSI: 6\n"
        "[  500.400000] sd 3:0:0:0: [sdb] 1953525168 512-byte logical blocks: "
        "(1.00 TB/932 GiB)\n"
        "[  500.500000] sd 3:0:0:0: [sdb] Attached SCSI disk\n")
    boot = utc(2026, 11, 27)
    records, issues = read([log], DriveLogReader(station="st", boot_time=boot))
    assert records == [
        DriveAttach(station="st", device="sdb", serial=None, model="ST4000VN008-2DR1",
                    bus="ata", capacity_bytes=7814037168 * 512,
                    attached=boot + timedelta(seconds=100),
                    detached=boot + timedelta(seconds=400), provenance=prov(log, 1)),
        DriveAttach(station="st", device="sdb", serial=None, model="Samsung PSSD T7",
                    bus="usb", capacity_bytes=1953525168 * 512,
                    attached=boot + timedelta(seconds=500), detached=None,
                    provenance=prov(log, 8)),
    ]
    assert issues == ()


def test_detach_of_a_drive_attached_before_the_log(tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_text("2026-11-27T08:00:00+00:00 st kernel: sd 5:0:0:0: [sdf] "
                   "Synchronizing SCSI cache\n")
    records, _ = read([log], DriveLogReader())
    assert records == [DriveAttach(
        station="st", device="sdf", serial=None, model=None, bus="scsi", capacity_bytes=None,
        attached=None, detached=utc(2026, 11, 27, 8), provenance=prov(log, 1))]


def test_sample_files_read_the_same_from_gzip(tmp_path: Path) -> None:
    gz = tmp_path / "kern.log.1.gz"
    with KERN_2.open("rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    records, issues = read([gz], DriveLogReader())
    assert records == [replace(SAS_80TB, provenance=prov(gz, 2))]
    assert issues == ()


# ----------------------------------------------------------------------------- pieces


def test_split_inquiry_fixed_width_and_loose() -> None:
    assert split_inquiry("Direct-Access     Seagate  BUP Slim SL      0108") == (
        "Direct-Access", "Seagate", "BUP Slim SL", "0108")
    assert split_inquiry("Direct-Access     WDC      WD180EDGZ-11B2DA0 0A85") == (
        "Direct-Access", "WDC", "WD180EDGZ-11B2DA0", "0A85")
    assert split_inquiry("Direct-Access                                   ") == (
        "Direct-Access", None, None, None)


def test_by_id_serial_prefers_the_drive_over_the_bridge() -> None:
    assert by_id_serial([
        "/dev/disk/by-id/usb-WD_Elements_25A3_575842314435324E-0:0",
        "/dev/disk/by-id/wwn-0x5000cca2c5d6e7f8",
    ]) == "575842314435324E"
    assert by_id_serial([
        "/dev/disk/by-id/usb-Seagate_Expansion_Desk_NAA4C0JX-0:0",
        "/dev/disk/by-id/nvme-Samsung_SSD_990_PRO_2TB_S7DNNJ0W123456A",
        "/dev/disk/by-id/ata-ST8000DM004-2U9188_ZR5A01XY-part1",
    ]) == "S7DNNJ0W123456A"
    assert by_id_serial(["/dev/disk/by-path/pci-0000:00:17.0-ata-5.0"]) is None



def test_drive_line_with_a_broken_prefix_is_malformed_other_programs_are_not(
        tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    text = ("Nov 27 04:50:12 st kernel: [12.0] usb 1-1: USB disconnect, device number 2\n"
            "Nov 27 04:5 st kernel: [13.0] sd 4:0:0:0: [sdb] Attached SCSI disk\n"
            "Nov 27 04:50:14 st udisksd[1123]: Attached SCSI disk seen on /dev/sdb\n"
            "Nov 27 04:50:15 st kernel: [15.0] scsi 4:0:0:0: Direct-Access ATA PQ: x\n")
    log.write_text(text)
    records, issues = read([log], DriveLogReader(year_reference=DECEMBER))
    assert records == []
    assert [(i.kind, i.count, i.first_offset) for i in issues] == [
        ("malformed_drive_line", 2, text.index("Nov 27 04:5 "))]
