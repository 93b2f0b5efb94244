"""Object-store access logs: S3, MinIO and Ceph RGW lines to ObjectStoreRequest records."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from egress.errors import SourceError
from egress.records import Issue, ObjectStoreRequest, Provenance
from egress.sources import objectstore_logfile
from egress.sources.objectstore import (
    CephOpsLogReader,
    MinioAuditLogReader,
    ObjectStoreLogReader,
    S3AccessLogReader,
    detect_objectstore_log,
    parse_minio_webhook_body,
)
from egress.sources.objectstore_logfile import new_request

DATA = Path(__file__).resolve().parent.parent / "data" / "objectstore"
S3_DOCS = DATA / "s3_aws_docs_example.log"
MINIO_DOCS = DATA / "minio_audit_docs_example.jsonl"
CEPH_2021 = DATA / "ceph_rgw_ops_2021.log"

OWNER = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
CHROME = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/90.0.4430.212 Safari/537.36")


def at(path: Path | str, line: int) -> Provenance:
    return Provenance(path=str(path), line=line)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


def write(path: Path, lines: list[str], *, newline_at_end: bool = True) -> Path:
    path.write_text("\n".join(lines) + ("\n" if newline_at_end else ""))
    return path


def s3_line(op: str, *, key: str = "-", status: str = "200", error: str = "-",
            size: str = "-", stamp: str = "06/Feb/2019:00:01:57 +0000",
            bucket: str = "awsexamplebucket1", request_id: str = "DD6CC733AEXAMPLE",
            requester: str = OWNER, agent: str = '"S3Console/0.4"',
            tail: str = " - 10S62Zv81kBW7BB6SX4XJ48o6kpcl6LPwEoizZQQxJd5qDSCTLX0TgS37kYUBKQW3+"
                        "bPdrg1234= SigV4 ECDHE-RSA-AES128-SHA AuthHeader "
                        "awsexamplebucket1.s3.us-west-1.amazonaws.com TLSV1.1") -> str:
    """An access-log line shaped like the fifth line of AWS's documented example."""
    method = op.split(".")[1] if op.count(".") >= 2 else "GET"
    return (f"{OWNER} {bucket} [{stamp}] 192.0.2.3 {requester} {request_id} {op} {key} "
            f'"{method} /{bucket}/{key} HTTP/1.1" {status} {error} - {size} 41754 28 "-" '
            f"{agent}{tail}")


def read_s3(*paths: Path) -> tuple[list[ObjectStoreRequest], list[Issue]]:
    reader = S3AccessLogReader()
    records = list(reader.read(paths))
    return records, reader.issues


# --- S3 server access logs ---------------------------------------------------------------


def test_s3_documented_example_every_field() -> None:
    records, issues = read_s3(S3_DOCS)
    common: dict[str, Any] = dict(store="s3", bucket="awsexamplebucket1", remote_addr="192.0.2.3",
                                  requester=OWNER, user_agent="S3Console/0.4")
    assert records == [
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 0, 38), operation="other",
                           raw_operation="REST.GET.VERSIONING", key=None, status=200,
                           bytes_in=0, object_size_bytes=None, request_id="3E57427F3EXAMPLE",
                           provenance=at(S3_DOCS, 1), **common),
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 0, 38), operation="other",
                           raw_operation="REST.GET.LOGGING_STATUS", key=None, status=200,
                           bytes_in=0, object_size_bytes=None, request_id="891CE47D2EXAMPLE",
                           provenance=at(S3_DOCS, 2), **common),
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 0, 38), operation="other",
                           raw_operation="REST.GET.BUCKETPOLICY", key=None, status=404,
                           bytes_in=0, object_size_bytes=None, request_id="A1206F460EXAMPLE",
                           provenance=at(S3_DOCS, 3), **common),
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 1, 0), operation="other",
                           raw_operation="REST.GET.VERSIONING", key=None, status=200,
                           bytes_in=0, object_size_bytes=None, request_id="7B4A0FABBEXAMPLE",
                           provenance=at(S3_DOCS, 4), **common),
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 1, 57), operation="put_object",
                           raw_operation="REST.PUT.OBJECT", key="s3-dg.pdf", status=200,
                           bytes_in=4406583, object_size_bytes=4406583,
                           request_id="DD6CC733AEXAMPLE", provenance=at(S3_DOCS, 5), **common),
    ]
    assert issues == []


def test_s3_newer_trailing_fields_and_older_short_lines_are_read(tmp_path: Path) -> None:
    # The first two lines of the current AWS example: Access Point ARN, aclRequired and
    # the source region after TLS version. The third stops after Version Id, as lines
    # written before Host Id existed did.
    path = write(tmp_path / "s3.log", [
        f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 {OWNER} "
        '3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning '
        'HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa'
        "6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader "
        "amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 "
        "arn:aws:s3:us-west-1:123456789012:accesspoint/example-AP Yes us-east-1",
        f"{OWNER} amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 {OWNER} "
        '891CE47D2EXAMPLE REST.GET.LOGGING_STATUS - "GET /amzn-s3-demo-bucket1?logging '
        'HTTP/1.1" 200 - 242 - 11 - "-" "S3Console/0.4" - 9vKBE6vMhrNiWHZmb2L0mXOcqPGzQOI5XLnCt'
        "ZNPxev+Hf+7tpT6sxDwDty4LHBUOZJG96N1234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader "
        "amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 - - us-east-1",
        s3_line("REST.PUT.OBJECT", key="old.bin", size="1000", tail=" -"),
    ])
    records, issues = read_s3(path)
    common: dict[str, Any] = dict(store="s3", status=200, remote_addr="192.0.2.3",
                                  requester=OWNER, user_agent="S3Console/0.4")
    assert records == [
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 0, 38), operation="other",
                           raw_operation="REST.GET.VERSIONING", bucket="amzn-s3-demo-bucket1",
                           key=None, bytes_in=0, object_size_bytes=None,
                           request_id="3E57427F3EXAMPLE", provenance=at(path, 1), **common),
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 0, 38), operation="other",
                           raw_operation="REST.GET.LOGGING_STATUS", bucket="amzn-s3-demo-bucket1",
                           key=None, bytes_in=0, object_size_bytes=None,
                           request_id="891CE47D2EXAMPLE", provenance=at(path, 2), **common),
        ObjectStoreRequest(time=utc(2019, 2, 6, 0, 1, 57), operation="put_object",
                           raw_operation="REST.PUT.OBJECT", bucket="awsexamplebucket1",
                           key="old.bin", bytes_in=1000, object_size_bytes=1000,
                           request_id="DD6CC733AEXAMPLE", provenance=at(path, 3), **common),
    ]
    assert issues == []


def test_s3_multipart_parts_are_counted_and_completion_adds_nothing(tmp_path: Path) -> None:
    # Part sizes of a real 700156671-byte multipart upload (cloudsqale.com, "S3 Multipart
    # Upload - S3 Access Log Messages"); the completion logs the whole object's size.
    parts = [134237279, 135973725, 136060019, 136033896, 134786426, 23065326]
    path = write(tmp_path / "s3.log", [
        s3_line("REST.POST.UPLOADS", key="data.gz"),
        *(s3_line("REST.PUT.PART", key="data.gz", size=str(size)) for size in parts),
        s3_line("REST.POST.UPLOAD", key="data.gz", size="700156671"),
    ])
    records, issues = read_s3(path)
    assert [(r.operation, r.bytes_in, r.object_size_bytes) for r in records] == [
        ("other", 0, None),
        *(("put_part", size, size) for size in parts),
        ("complete_multipart", 0, 700156671),
    ]
    assert sum(r.bytes_in for r in records) == 700156671
    assert issues == []


def test_s3_copy_is_counted_once(tmp_path: Path) -> None:
    # S3 logs a copy twice: the GET side in the source bucket, the PUT side (also for a
    # PUT with x-amz-copy-source) in the destination bucket.
    path = write(tmp_path / "s3.log", [
        s3_line("REST.COPY.OBJECT_GET", bucket="source", key="a.bin", size="5000"),
        s3_line("REST.COPY.OBJECT", bucket="dest", key="a.bin", size="5000"),
        s3_line("REST.COPY.PART_GET", bucket="source", key="b.bin", size="700"),
        s3_line("REST.COPY.PART", bucket="dest", key="b.bin", size="700"),
    ])
    records, _ = read_s3(path)
    assert [(r.bucket, r.operation, r.bytes_in) for r in records] == [
        ("source", "other", 0), ("dest", "copy_object", 5000),
        ("source", "other", 0), ("dest", "copy_object", 700),
    ]


def test_s3_failed_puts_are_kept_without_volume(tmp_path: Path) -> None:
    path = write(tmp_path / "s3.log", [
        s3_line("REST.PUT.OBJECT", key="denied.bin", status="403", error="AccessDenied",
                size="4406583"),
        s3_line("REST.PUT.PART", key="broken.bin", status="500", error="InternalError",
                size="1048576"),
    ])
    records, issues = read_s3(path)
    assert [(r.operation, r.status, r.bytes_in, r.object_size_bytes) for r in records] == [
        ("put_object", 403, 0, 4406583),
        ("put_part", 500, 0, 1048576),
    ]
    assert issues == []


def test_s3_unset_fields_are_none_and_keys_are_decoded(tmp_path: Path) -> None:
    path = write(tmp_path / "s3.log", [
        s3_line("REST.GET.OBJECT", key="photos/2019/my%20puppy.jpg", requester="-", agent="-",
                size="3462992"),
    ])
    records, _ = read_s3(path)
    assert records == [ObjectStoreRequest(
        time=utc(2019, 2, 6, 0, 1, 57), store="s3", operation="get_object",
        raw_operation="REST.GET.OBJECT", bucket="awsexamplebucket1",
        key="photos/2019/my puppy.jpg", status=200, bytes_in=0, object_size_bytes=3462992,
        remote_addr="192.0.2.3", requester=None, user_agent=None, request_id="DD6CC733AEXAMPLE",
        provenance=at(path, 1))]


def test_s3_time_with_offset_is_converted_to_utc(tmp_path: Path) -> None:
    path = write(tmp_path / "s3.log",
                 [s3_line("REST.GET.OBJECT", stamp="06/Feb/2019:02:30:00 +0230")])
    records, _ = read_s3(path)
    assert records[0].time == utc(2019, 2, 6, 0, 0, 0)


def test_s3_malformed_lines_are_counted_with_first_position(tmp_path: Path) -> None:
    good = s3_line("REST.GET.OBJECT", key="k")
    lines = [good, "this is not an access log line", good, "", good[:80],
             s3_line("REST.GET.OBJECT", stamp="06/Foo/2019:00:01:57 +0000"), good]
    path = write(tmp_path / "s3.log", lines)
    records, issues = read_s3(path)
    assert [r.provenance.line for r in records] == [1, 3, 7]
    assert issues == [Issue(path=str(path), kind="malformed_s3_line", count=3,
                            first_offset=len(good) + 1,
                            detail="first at line 2: not an S3 server access log line")]


def test_s3_issue_offsets_count_bytes_of_non_ascii_lines(tmp_path: Path) -> None:
    accented = s3_line("REST.GET.OBJECT", agent='"Caf\u00e9Client/1.0 \u00fcber"')
    path = write(tmp_path / "s3.log", [accented, "junk"])
    records, issues = read_s3(path)
    assert records[0].user_agent == "Caf\u00e9Client/1.0 \u00fcber"
    assert issues[0].first_offset == len(accented.encode()) + 1


def test_s3_oversized_line_is_skipped_and_counted(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objectstore_logfile, "CHUNK_BYTES", 256)
    monkeypatch.setattr(objectstore_logfile, "MAX_LINE_BYTES", 1000)
    good = s3_line("REST.GET.OBJECT")
    path = write(tmp_path / "s3.log", [good, "x" * 5000, good, "y" * 3000])
    records, issues = read_s3(path)
    assert [r.provenance.line for r in records] == [1, 3]
    assert issues == [Issue(path=str(path), kind="oversized_line", count=2,
                            first_offset=len(good) + 1,
                            detail="first at line 2: line longer than 1000 bytes skipped")]


def test_s3_half_written_last_line_is_an_issue_and_nothing_before_it_is_lost(
        tmp_path: Path) -> None:
    good = s3_line("REST.PUT.OBJECT", key="k", size="10")
    path = write(tmp_path / "s3.log", [good, good, good[:100]], newline_at_end=False)
    records, issues = read_s3(path)
    assert [r.provenance.line for r in records] == [1, 2]
    assert issues == [Issue(path=str(path), kind="partial_last_line", count=1,
                            first_offset=2 * (len(good) + 1),
                            detail="first at line 3: not an S3 server access log line")]


def test_s3_complete_last_line_without_newline_is_read(tmp_path: Path) -> None:
    good = s3_line("REST.PUT.OBJECT", key="k", size="10")
    path = write(tmp_path / "s3.log", [good, good], newline_at_end=False)
    records, issues = read_s3(path)
    assert [r.provenance.line for r in records] == [1, 2]
    assert issues == []


def test_s3_crlf_lines_are_read(tmp_path: Path) -> None:
    path = tmp_path / "s3.log"
    path.write_bytes(S3_DOCS.read_bytes().replace(b"\n", b"\r\n"))
    records, issues = read_s3(path)
    expected, _ = read_s3(S3_DOCS)
    assert [r.request_id for r in records] == [r.request_id for r in expected]
    assert issues == []


def test_s3_gzip_is_detected_by_magic(tmp_path: Path) -> None:
    path = tmp_path / "access-log-without-suffix"
    path.write_bytes(gzip.compress(S3_DOCS.read_bytes()))
    records, issues = read_s3(path)
    expected, _ = read_s3(S3_DOCS)
    assert [(r.request_id, r.provenance) for r in records] == [
        (r.request_id, at(path, r.provenance.line or 0)) for r in expected]
    assert issues == []


def test_s3_truncated_gzip_keeps_every_line_before_the_cut(tmp_path: Path) -> None:
    # A complete gzip member of 100 lines, then a second member cut after its header.
    lines = [s3_line("REST.PUT.OBJECT", key=f"k{i}", size=str(i)) for i in range(100)]
    text = ("\n".join(lines) + "\n").encode()
    path = tmp_path / "s3.log.gz"
    path.write_bytes(gzip.compress(text) + gzip.compress(text)[:10])
    records, issues = read_s3(path)
    assert [r.key for r in records] == [f"k{i}" for i in range(100)]
    assert issues == [Issue(
        path=str(path), kind="truncated_gzip", count=1, first_offset=len(text),
        detail="first at line 101: compressed data ends or breaks here (Compressed file ended "
               "before the end-of-stream marker was reached); the lines before it were read")]


def test_s3_gzip_cut_inside_the_stream_yields_the_lines_decompressed(tmp_path: Path) -> None:
    lines = [s3_line("REST.PUT.OBJECT", key=f"k{i}", size=str(i)) for i in range(2000)]
    text = ("\n".join(lines) + "\n").encode()
    packed = gzip.compress(text)
    path = tmp_path / "s3.log.gz"
    path.write_bytes(packed[: len(packed) // 2])
    available = zlib.decompressobj(wbits=31).decompress(packed[: len(packed) // 2])
    complete = available.count(b"\n")
    records, issues = read_s3(path)
    assert [r.key for r in records] == [f"k{i}" for i in range(complete)]
    assert [(i.kind, i.count) for i in issues] == [("truncated_gzip", 1),
                                                  ("partial_last_line", 1)]
    assert issues[1].first_offset == available.rindex(b"\n") + 1
    assert issues[1].detail.startswith(f"first at line {complete + 1}: ")


def test_s3_corrupt_gzip_is_an_issue(tmp_path: Path) -> None:
    packed = bytearray(gzip.compress(S3_DOCS.read_bytes()))
    packed[-8:] = b"\x00" * 8  # CRC and length of the member no longer match
    path = tmp_path / "s3.log.gz"
    path.write_bytes(bytes(packed))
    records, issues = read_s3(path)
    assert len(records) == 5
    assert [(i.kind, i.count) for i in issues] == [("corrupt_gzip", 1)]


def test_unreadable_file_raises_source_error(tmp_path: Path) -> None:
    missing = tmp_path / "missing.log"
    with pytest.raises(SourceError, match=r"missing\.log: cannot open object-store log"):
        list(S3AccessLogReader().read([missing]))


# --- MinIO audit logs ---------------------------------------------------------------------


def test_minio_documented_examples_every_field() -> None:
    reader = MinioAuditLogReader()
    records = list(reader.read([MINIO_DOCS]))
    assert records == [
        # 2019: no rx/tx/accessKey; an aws-chunked upload of 512 bytes (686 on the wire);
        # the access key is the one the request was signed with.
        ObjectStoreRequest(
            time=utc(2019, 8, 12, 21, 34, 37, 187817), store="minio",
            operation="put_object", raw_operation="PutObject", bucket="testbucket", key="hosts",
            status=200, bytes_in=512, object_size_bytes=512, remote_addr="127.0.0.1",
            requester="minio",
            user_agent="MinIO (linux; amd64) minio-go/v6.0.32 mc/2019-08-12T18:27:13Z",
            request_id="15BA4A72C0C70AFC", provenance=at(MINIO_DOCS, 1)),
        # 2024: the completion of a multipart upload adds nothing.
        ObjectStoreRequest(
            time=utc(2024, 2, 29, 19, 39, 25, 744431), store="minio",
            operation="complete_multipart", raw_operation="CompleteMultipartUpload",
            bucket="data", key="test-data.csv", status=200, bytes_in=0, object_size_bytes=None,
            remote_addr="127.0.0.1", requester="minioadmin",
            user_agent="MinIO (linux; amd64) minio-go/v7.0.67 mc/RELEASE.2024-02-24T01-33-20Z",
            request_id="17B86CB0ED88EBE9", provenance=at(MINIO_DOCS, 2)),
    ]
    assert reader.issues == []


def minio_entry(name: str, *, status: int = 200, rx: int | None = None,
                headers: dict[str, str] | None = None, key: str = "big.bin",
                **extra: Any) -> dict[str, Any]:
    api: dict[str, Any] = {"name": name, "bucket": "ingest", "object": key,
                           "status": "OK" if status < 400 else "Forbidden", "statusCode": status,
                           "tx": 0}
    if rx is not None:
        api["rx"] = rx
    entry: dict[str, Any] = {"version": "1", "time": "2024-05-01T10:00:00.123456789Z",
                             "trigger": "incoming", "api": api, "remotehost": "10.0.0.7",
                             "requestID": "17C0000000000001", "userAgent": "aws-cli/2.15",
                             "requestHeader": headers or {}, "accessKey": "TENANTKEY"}
    entry.update(extra)
    return entry


def read_minio_entries(tmp_path: Path, entries: list[dict[str, Any]]
                       ) -> tuple[list[ObjectStoreRequest], list[Issue]]:
    path = write(tmp_path / "audit.jsonl", [json.dumps(e) for e in entries])
    reader = MinioAuditLogReader()
    return list(reader.read([path])), reader.issues


def test_minio_multipart_parts_counted_completion_adds_nothing(tmp_path: Path) -> None:
    records, issues = read_minio_entries(tmp_path, [
        minio_entry("NewMultipartUpload", rx=0),
        minio_entry("PutObjectPart", rx=5242880, headers={"Content-Length": "5242880"}),
        minio_entry("PutObjectPart", rx=1000, headers={"Content-Length": "1000"}),
        minio_entry("CompleteMultipartUpload", rx=267, headers={"Content-Length": "267"}),
    ])
    assert [(r.operation, r.bytes_in, r.object_size_bytes) for r in records] == [
        ("other", 0, None), ("put_part", 5242880, 5242880), ("put_part", 1000, 1000),
        ("complete_multipart", 0, None)]
    assert issues == []


def test_minio_upload_size_prefers_decoded_length_then_rx(tmp_path: Path) -> None:
    records, _ = read_minio_entries(tmp_path, [
        minio_entry("PutObject", rx=8300, headers={
            "Content-Length": "8300", "X-Amz-Content-Sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "X-Amz-Decoded-Content-Length": "8192"}),
        minio_entry("PutObject", rx=700, headers={"content-length": "700"}),
        minio_entry("PostPolicyBucket", rx=9000, headers={"Content-Length": "9000"}),
    ])
    assert [(r.operation, r.bytes_in, r.object_size_bytes) for r in records] == [
        ("put_object", 8192, 8192), ("put_object", 700, 700), ("put_object", 9000, None)]


def test_minio_copies_counted_once_and_unknown_copy_size_is_an_issue(tmp_path: Path) -> None:
    records, issues = read_minio_entries(tmp_path, [
        minio_entry("CopyObjectPart", rx=0,
                    headers={"X-Amz-Copy-Source": "src/a", "X-Amz-Copy-Source-Range":
                             "bytes=0-5242879"}),
        minio_entry("CopyObject", rx=0, headers={"X-Amz-Copy-Source": "src/a"}),
    ])
    assert [(r.operation, r.bytes_in, r.object_size_bytes) for r in records] == [
        ("copy_object", 5242880, 5242880), ("copy_object", 0, None)]
    assert issues == [Issue(
        path=str(tmp_path / "audit.jsonl"), kind="upload_size_unknown", count=1,
        first_offset=None,
        detail="first at line 2: CopyObject succeeded but the log gives no size; counted as "
               "0 bytes")]


def test_minio_failed_put_is_kept_without_volume(tmp_path: Path) -> None:
    records, issues = read_minio_entries(tmp_path, [
        minio_entry("PutObject", status=403, rx=0, headers={"Content-Length": "4096"}),
        minio_entry("PutObject", status=500, rx=4096, headers={"Content-Length": "4096"}),
    ])
    assert [(r.status, r.bytes_in, r.object_size_bytes) for r in records] == [
        (403, 0, 4096), (500, 0, 4096)]
    assert issues == []


def test_minio_requester_for_older_releases(tmp_path: Path) -> None:
    records, _ = read_minio_entries(tmp_path, [
        minio_entry("GetObject", accessKey="", requestClaims={"accessKey": "STSKEY"}),
        minio_entry("GetObject", accessKey="",
                    headers={"Authorization": "AWS V2KEY:frJIUN8DYpKDtOLCwo//yllqDzg="}),
        minio_entry("GetObject", accessKey="", requestQuery={
            "X-Amz-Credential": "PRESIGNED/20240501/us-east-1/s3/aws4_request"}),
        minio_entry("GetObject", accessKey=""),
    ])
    assert [r.requester for r in records] == ["STSKEY", "V2KEY", "PRESIGNED", None]


def test_minio_bad_lines_are_counted(tmp_path: Path) -> None:
    path = write(tmp_path / "audit.jsonl", [
        json.dumps(minio_entry("GetObject")),
        '{"version": "1", "time": "2024-05-01T10:00:00Z"}',
        "{not json",
        json.dumps(minio_entry("GetObject", time="yesterday")),
        json.dumps(minio_entry("GetObject")),
    ])
    reader = MinioAuditLogReader()
    assert [r.provenance.line for r in reader.read([path])] == [1, 5]
    assert reader.issues == [Issue(path=str(path), kind="malformed_minio_line", count=3,
                                   first_offset=len(json.dumps(minio_entry("GetObject"))) + 1,
                                   detail="first at line 2: no api object: not a MinIO audit "
                                          "entry")]


def test_minio_webhook_body_one_entry() -> None:
    body = MINIO_DOCS.read_bytes().splitlines()[1]
    records, issues = parse_minio_webhook_body(body, source="webhook:10.0.0.5")
    assert [(r.raw_operation, r.requester, r.provenance) for r in records] == [
        ("CompleteMultipartUpload", "minioadmin", Provenance(path="webhook:10.0.0.5", line=1))]
    assert issues == []


def test_minio_webhook_body_pretty_printed_entry() -> None:
    entry = minio_entry("PutObject", rx=10, headers={"Content-Length": "10"})
    records, issues = parse_minio_webhook_body(json.dumps(entry, indent=2).encode(),
                                               source="hook")
    assert [(r.operation, r.bytes_in, r.provenance.line) for r in records] == [
        ("put_object", 10, 1)]
    assert issues == []


def test_minio_webhook_body_batch_and_array() -> None:
    entries = [minio_entry("PutObjectPart", rx=n, headers={"Content-Length": str(n)})
               for n in (100, 200, 300)]
    batch = "".join(json.dumps(e) + "\n" for e in entries).encode()
    array = json.dumps(entries).encode()
    for body in (batch, array):
        records, issues = parse_minio_webhook_body(body, source="hook")
        assert [r.bytes_in for r in records] == [100, 200, 300]
        assert issues == []
    assert [r.provenance.line for r in parse_minio_webhook_body(batch, source="hook")[0]] == [
        1, 2, 3]


def test_minio_webhook_probe_and_empty_bodies_yield_nothing() -> None:
    assert parse_minio_webhook_body(b"{}", source="hook") == ([], [])
    assert parse_minio_webhook_body(b"", source="hook") == ([], [])


def test_minio_webhook_bad_entry_does_not_lose_the_others() -> None:
    body = "\n".join([
        json.dumps(minio_entry("PutObject", rx=1, headers={"Content-Length": "1"})),
        '{"api": {"name": "PutObject"}, "truncated',
        json.dumps({"hello": "world"}),
        json.dumps(minio_entry("PutObject", rx=2, headers={"Content-Length": "2"})),
    ]).encode()
    records, issues = parse_minio_webhook_body(body, source="hook")
    assert [(r.bytes_in, r.provenance.line) for r in records] == [(1, 1), (2, 4)]
    assert [(i.kind, i.count, i.detail.split(":")[0]) for i in issues] == [
        ("malformed_minio_entry", 2, "first at line 2")]


# --- Ceph RGW ops logs --------------------------------------------------------------------


def test_ceph_older_entries_without_trailing_fields() -> None:
    reader = CephOpsLogReader()
    records = list(reader.read([CEPH_2021]))
    common: dict[str, Any] = dict(store="ceph-rgw", bucket="create-bucket", key=None,
                                  requester="admin", user_agent=CHROME, request_id=None,
                                  remote_addr="10.10.103.64")
    assert [(r.raw_operation, r.operation, r.status, r.bytes_in) for r in records] == [
        ("get_lifecycle", "other", 404, 0), ("get_bucket_tags", "other", 404, 0),
        ("stat_bucket", "other", 200, 0), ("get_cors", "other", 404, 0),
        ("list_bucket", "other", 200, 0), ("get_acls", "other", 200, 0),
        ("init_multipart", "other", 200, 0), ("put_obj", "put_part", 200, 85),
        ("complete_multipart", "complete_multipart", 200, 0), ("list_bucket", "other", 200, 0),
        ("get_acls", "other", 200, 0)]
    assert records[7] == ObjectStoreRequest(
        time=utc(2021, 5, 26, 7, 42, 49, 789727), operation="put_part",
        raw_operation="put_obj", status=200, bytes_in=85, object_size_bytes=85,
        provenance=at(CEPH_2021, 8), **common)
    assert records[8] == ObjectStoreRequest(
        time=utc(2021, 5, 26, 7, 42, 49, 977727),
        operation="complete_multipart", raw_operation="complete_multipart", status=200,
        bytes_in=0, object_size_bytes=0, provenance=at(CEPH_2021, 9), **common)
    assert reader.issues == []


def ceph_entry(operation: str, uri: str, *, status: str = "200", size: int = 0,
               received: int = 0, **extra: Any) -> dict[str, Any]:
    """An entry with every field of a current release, in rgw_format_ops_log_entry's order."""
    entry: dict[str, Any] = {
        "bucket": "tenant-a", "object": "dataset/shard-0001.tar",
        "time": "2024-06-12T13:12:00.000000Z", "time_local": "2024-06-12T15:12:00.000000+0200",
        "remote_addr": "10.20.1.5", "user": "tenant-a-user", "operation": operation, "uri": uri,
        "http_status": status, "error_code": "" if status < "400" else "AccessDenied",
        "bytes_sent": 0, "bytes_received": received, "object_size": size, "total_time": 41,
        "user_agent": "aws-cli/2.15.0", "referrer": "",
        "trans_id": "tx00000a1b2c3d4e5f60000-0066699c40-1234-default",
        "authentication_type": "Local", "access_key_id": "0555b35654ad1656d804",
        "temp_url": False}
    entry.update(extra)
    return entry


def read_ceph_lines(tmp_path: Path, lines: list[str], *, newline_at_end: bool = True
                    ) -> tuple[list[ObjectStoreRequest], list[Issue]]:
    path = write(tmp_path / "ops.log", lines, newline_at_end=newline_at_end)
    reader = CephOpsLogReader()
    return list(reader.read([path])), reader.issues


def test_ceph_current_entry_every_field(tmp_path: Path) -> None:
    line = json.dumps(ceph_entry("put_obj", "PUT /tenant-a/dataset/shard-0001.tar HTTP/1.1",
                                 size=1073741824, received=1073741824))
    records, issues = read_ceph_lines(tmp_path, [line])
    assert records == [ObjectStoreRequest(
        time=utc(2024, 6, 12, 13, 12, 0), store="ceph-rgw", operation="put_object",
        raw_operation="put_obj", bucket="tenant-a", key="dataset/shard-0001.tar", status=200,
        bytes_in=1073741824, object_size_bytes=1073741824, remote_addr="10.20.1.5",
        requester="0555b35654ad1656d804", user_agent="aws-cli/2.15.0",
        request_id="tx00000a1b2c3d4e5f60000-0066699c40-1234-default",
        provenance=at(tmp_path / "ops.log", 1))]
    assert issues == []


def test_ceph_socket_stream_array_without_closing_bracket(tmp_path: Path) -> None:
    entries = [ceph_entry("get_obj", "GET /tenant-a/a HTTP/1.1", size=10),
               ceph_entry("put_obj", "PUT /tenant-a/b HTTP/1.1", size=20),
               ceph_entry("delete_obj", "DELETE /tenant-a/c HTTP/1.1")]
    stream = "[" + "".join(json.dumps(e) + ",\n" for e in entries)
    path = tmp_path / "socket.log"
    path.write_text(stream)
    reader = CephOpsLogReader()
    records = list(reader.read([path]))
    assert [(r.operation, r.bytes_in, r.provenance.line) for r in records] == [
        ("get_object", 0, 1), ("put_object", 20, 2), ("delete_object", 0, 3)]
    assert reader.issues == []
    closed = tmp_path / "closed.log"
    closed.write_text(stream.rstrip(",\n") + "]\n")
    assert [r.operation for r in CephOpsLogReader().read([closed])] == [
        "get_object", "put_object", "delete_object"]


def test_ceph_several_entries_written_on_one_line(tmp_path: Path) -> None:
    # Under load RGW has flushed several entries before one newline (ceph/ceph#68881).
    a = ceph_entry("put_obj", "PUT /tenant-a/a HTTP/1.1", size=5)
    b = ceph_entry("put_obj", "PUT /tenant-a/b HTTP/1.1", size=7)
    records, issues = read_ceph_lines(tmp_path, [json.dumps(a) + json.dumps(b),
                                                 json.dumps(a)])
    assert [(r.bytes_in, r.provenance.line) for r in records] == [(5, 1), (7, 1), (5, 2)]
    assert issues == []


def test_ceph_multipart_copy_failure_and_reads(tmp_path: Path) -> None:
    part = "PUT /tenant-a/big?partNumber={}&uploadId=2~abc HTTP/1.1"
    records, issues = read_ceph_lines(tmp_path, [json.dumps(e) for e in [
        ceph_entry("init_multipart", "POST /tenant-a/big?uploads HTTP/1.1"),
        ceph_entry("put_obj", part.format(1), size=8388608, received=8388608),
        ceph_entry("put_obj", part.format(2), size=1000, received=1000),
        ceph_entry("complete_multipart", "POST /tenant-a/big?uploadId=2~abc HTTP/1.1",
                   size=8389608),
        ceph_entry("copy_obj", "PUT /tenant-a/copy HTTP/1.1", size=8389608),
        ceph_entry("put_obj", "PUT /tenant-a/denied HTTP/1.1", status="403", size=0,
                   received=4096),
        ceph_entry("get_obj", "HEAD /tenant-a/big HTTP/1.1", size=8389608),
        ceph_entry("get_obj", "GET /tenant-a/big HTTP/1.1", size=8389608),
        ceph_entry("get_obj", "GET /tenant-a/big HTTP/1.1", user="anonymous",
                   access_key_id=""),
    ]])
    assert [(r.operation, r.status, r.bytes_in) for r in records] == [
        ("other", 200, 0), ("put_part", 200, 8388608), ("put_part", 200, 1000),
        ("complete_multipart", 200, 0), ("copy_object", 200, 8389608), ("put_object", 403, 0),
        ("other", 200, 0), ("get_object", 200, 0), ("get_object", 200, 0)]
    assert records[-1].requester is None
    assert issues == []


def test_ceph_malformed_and_half_written_lines(tmp_path: Path) -> None:
    good = json.dumps(ceph_entry("get_obj", "GET /tenant-a/a HTTP/1.1"))
    records, issues = read_ceph_lines(
        tmp_path, [good, '{"bucket": "b", "operation": "get_obj"}', good, good[:50]],
        newline_at_end=False)
    path = str(tmp_path / "ops.log")
    assert [r.provenance.line for r in records] == [1, 3]
    assert issues == [
        Issue(path=path, kind="malformed_ceph_line", count=1, first_offset=len(good) + 1,
              detail="first at line 2: no time"),
        Issue(path=path, kind="partial_last_line", count=1,
              first_offset=2 * (len(good) + 1) + len('{"bucket": "b", "operation": "get_obj"}') + 1,
              detail="first at line 4: not JSON: Unterminated string starting at "
                     "(character 34)"),
    ]


# --- detection and the format-detecting reader --------------------------------------------


def test_detect_objectstore_log(tmp_path: Path) -> None:
    gz = tmp_path / "minio.gz"
    gz.write_bytes(gzip.compress(MINIO_DOCS.read_bytes()))
    first_bad = write(tmp_path / "s3-first-line-bad.log", ["garbage", s3_line("REST.GET.OBJECT")])
    socket = tmp_path / "socket"
    socket.write_text("[" + CEPH_2021.read_text().replace("}\n", "},\n"))
    empty = tmp_path / "empty.log"
    empty.write_text("")
    text = write(tmp_path / "notes.txt", ["hello", "world"])
    assert [detect_objectstore_log(p) for p in (S3_DOCS, MINIO_DOCS, CEPH_2021, gz, first_bad,
                                                socket, empty, text)] == [
        "s3", "minio", "ceph-rgw", "minio", "s3", "ceph-rgw", None, None]


def test_reader_detects_each_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_text("\n")
    reader = ObjectStoreLogReader()
    records = list(reader.read([S3_DOCS, empty, MINIO_DOCS, CEPH_2021]))
    assert [r.store for r in records] == ["s3"] * 5 + ["minio"] * 2 + ["ceph-rgw"] * 11
    assert records[:5] == list(S3AccessLogReader().read([S3_DOCS]))
    assert reader.formats == {str(S3_DOCS): "s3", str(MINIO_DOCS): "minio",
                              str(CEPH_2021): "ceph-rgw"}
    assert reader.issues == []


def test_reader_counts_issues_per_file(tmp_path: Path) -> None:
    s3 = write(tmp_path / "a.log", [s3_line("REST.GET.OBJECT"), "junk"])
    ceph = write(tmp_path / "b.log", [json.dumps(ceph_entry("get_obj", "GET /x HTTP/1.1")),
                                      "junk"])
    reader = ObjectStoreLogReader()
    assert len(list(reader.read([s3, ceph]))) == 2
    assert [(i.path, i.kind, i.count) for i in reader.issues] == [
        (str(s3), "malformed_s3_line", 1), (str(ceph), "malformed_ceph_line", 1)]


def test_reader_rejects_a_file_of_unknown_format_up_front(tmp_path: Path) -> None:
    text = write(tmp_path / "notes.txt", ["hello", "world"])
    with pytest.raises(SourceError, match=r"notes\.txt: not an S3 server access log, MinIO "
                                          r"audit log or Ceph RGW ops log$"):
        ObjectStoreLogReader().read([S3_DOCS, text])


def test_reader_points_at_radosgw_admin_log_show_output(tmp_path: Path) -> None:
    show = tmp_path / "show.json"
    show.write_text(json.dumps({"bucket_id": "f2a3.76990.2", "bucket_owner": "admin",
                                "bucket": "create-bucket", "log_entries": []}, indent=4))
    with pytest.raises(SourceError, match="radosgw-admin log show output is not read"):
        ObjectStoreLogReader().read([show])


def test_reader_rejects_gzip_with_nothing_readable(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress(S3_DOCS.read_bytes())[:12])
    with pytest.raises(SourceError, match=r"cut\.gz: cannot read object-store log "
                                          r"\(truncated_gzip\)"):
        ObjectStoreLogReader().read([path])


def test_new_request_equals_the_constructors() -> None:
    built = new_request(utc(2024, 1, 1), "s3", "get_object", "REST.GET.OBJECT", "b", "k", 200, 0,
                        5, "192.0.2.1", "arn:aws:iam::123456789012:user/alice", "curl/8",
                        "ID", "x.log", 7)
    expected = ObjectStoreRequest(
        time=utc(2024, 1, 1), store="s3", operation="get_object", raw_operation="REST.GET.OBJECT",
        bucket="b", key="k", status=200, bytes_in=0, object_size_bytes=5,
        remote_addr="192.0.2.1", requester="arn:aws:iam::123456789012:user/alice",
        user_agent="curl/8", request_id="ID", provenance=Provenance(path="x.log", line=7))
    assert built == expected
    assert hash(built) == hash(expected)
    assert repr(built) == repr(expected)
