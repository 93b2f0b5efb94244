"""Connection enrichment from ssl.log and http.log, joined to conn records by ``uid``.

:func:`collect_enrichment` turns ssl and http batches into one
:class:`Enrichment` per uid: the first TLS server name (SNI) and the HTTP
requests in log order (open_http.log repeats requests of open connections; a
repeated ``(uid, trans_depth)`` is kept once). :func:`attach_enrichment` adds
the columns :data:`egress.columns.ENRICHMENT_FIELDS` to a conn batch with
vectorized lookups (:class:`EnrichmentIndex` builds the lookup arrays once).

Memory: the result is a dict keyed by uid, so it grows with the connections
in the ssl/http records read; callers bound it by reading the logs of the time
window being processed (``since``/``until`` of
:meth:`egress.sources.zeek.ZeekLogReader.read_enrichment`) and, as a hard cap,
``max_uids``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from egress.columns import ENRICHMENT_FIELDS, STRING_LIST


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpRequest:
    """One HTTP request of a connection (http.log); unset fields are ``None``."""

    method: str | None
    host: str | None
    uri: str | None
    request_body_len: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Enrichment:
    """What ssl.log and http.log say about one connection."""

    server_name: str | None = None
    http: tuple[HttpRequest, ...] = ()


def collect_enrichment(ssl_batches: Iterable[pa.RecordBatch],
                       http_batches: Iterable[pa.RecordBatch], *,
                       max_uids: int | None = None) -> tuple[dict[str, Enrichment], int]:
    """Build per-uid enrichment; return it and the number of uids dropped by ``max_uids``."""
    names: dict[str, str] = {}
    requests: dict[str, dict[object, HttpRequest]] = {}
    seen: set[str] = set()
    dropped: set[str] = set()

    def admit(uid: str) -> bool:
        if uid in seen:
            return True
        if max_uids is not None and len(seen) >= max_uids:
            dropped.add(uid)
            return False
        seen.add(uid)
        return True

    for batch in ssl_batches:
        uids = batch.column("uid").to_pylist()
        snis = batch.column("server_name").to_pylist()
        for uid, sni in zip(uids, snis, strict=True):
            if uid is None or sni is None or uid in names or not admit(uid):
                continue
            names[uid] = sni
    for batch in http_batches:
        cols = [batch.column(c).to_pylist() for c in
                ("uid", "trans_depth", "method", "host", "uri", "request_body_len")]
        for uid, depth, method, host, uri, body in zip(*cols, strict=True):
            if uid is None or not admit(uid):
                continue
            per_uid = requests.setdefault(uid, {})
            key: object = depth if depth is not None else ("row", len(per_uid))
            if key not in per_uid:
                per_uid[key] = HttpRequest(method=method, host=host, uri=uri,
                                           request_body_len=body)
    result = {
        uid: Enrichment(server_name=names.get(uid),
                        http=tuple(requests[uid].values()) if uid in requests else ())
        for uid in seen
    }
    return result, len(dropped)


class EnrichmentIndex:
    """Arrow lookup arrays built once from a uid -> :class:`Enrichment` mapping."""

    def __init__(self, enrichment: Mapping[str, Enrichment]) -> None:
        uids = list(enrichment)
        values = [enrichment[u] for u in uids]
        self.keys = pa.array(uids, pa.string())
        self.server_name = pa.array([v.server_name for v in values], pa.string())
        self.methods = pa.array([[r.method for r in v.http] if v.http else None
                                 for v in values], STRING_LIST)
        self.hosts = pa.array([[r.host for r in v.http] if v.http else None
                               for v in values], STRING_LIST)
        self.body = pa.array([_body_sum(v.http) for v in values], pa.uint64())


def _body_sum(requests: tuple[HttpRequest, ...]) -> int | None:
    sizes = [r.request_body_len for r in requests if r.request_body_len is not None]
    return sum(sizes) if sizes else None


def attach_enrichment(batch: pa.RecordBatch,
                      enrichment: Mapping[str, Enrichment] | EnrichmentIndex) -> pa.RecordBatch:
    """Return ``batch`` with the enrichment columns appended (null where a uid has none).

    The batch's schema metadata (source file, log) is kept.
    """
    index = enrichment if isinstance(enrichment, EnrichmentIndex) else EnrichmentIndex(enrichment)
    at = pc.index_in(batch.column("uid"), value_set=index.keys)
    columns = [index.server_name.take(at), index.methods.take(at), index.hosts.take(at),
               index.body.take(at)]
    schema = pa.schema([*batch.schema, *ENRICHMENT_FIELDS], metadata=batch.schema.metadata)
    return pa.RecordBatch.from_arrays([*batch.columns, *columns], schema=schema)
