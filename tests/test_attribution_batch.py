"""Column-wise attribution of conn batches: the same answers as the per-row rules."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from ipaddress import AddressValueError, IPv4Address, ip_network
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

from egress.attribution import ATTRIBUTION_FIELDS, Attributor
from egress.attribution_batch import _dotted_quads
from egress.columns import CONN_SCHEMA
from egress.geo import GeoLookup, RangeCsvGeo, ipv4_lookup, ipv4_ranges, load_geo
from egress.inventory import (
    Identifiers,
    Inventory,
    NetworkAssignment,
    Site,
    Tenant,
    VniAssignment,
    load_inventory,
)

BASE = datetime(2026, 6, 1, tzinfo=UTC)
#: Instants on a grid, so that row times fall exactly on range boundaries; the last is past
#: 2**53 microseconds, where float division stops being exact.
INSTANTS = [BASE + timedelta(days=d) for d in range(8)] + [
    BASE + timedelta(days=2, microseconds=1), BASE - timedelta(microseconds=1),
    datetime(2300, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
]
BOUNDS = [None, *INSTANTS[:8]]
#: Ranges (some nested) that tenants may hold; site networks to pick from.
CIDRS = ["10.1.0.0/16", "10.1.2.0/24", "10.1.2.128/25", "10.9.0.0/24", "198.51.100.0/24",
         "2001:db8:100:1::/64", "2001:db8:100::/48", "203.0.113.64/26", "0.0.0.0/0"]
SITE_NETS = ["10.0.0.0/8", "2001:db8:100::/48", "198.51.100.0/25", "100.64.0.0/10"]
ADDRESSES = [
    "10.1.2.3", "10.1.2.200", "10.1.9.9", "10.9.0.7", "10.200.0.1", "172.16.5.5",
    "100.64.1.1", "198.51.100.9", "198.51.100.200", "203.0.113.70", "203.0.113.5",
    "8.8.8.8", "1.1.1.1", "2001:db8:100:1::5", "2001:db8:100:2::5", "2001:db8:ffff::1",
    "fd00::1", "::ffff:10.1.2.3", "::ffff:8.8.8.8", "010.1.2.3", "1.2.3.256", "bogus", "",
    " 10.1.2.3", "0.0.0.0", "255.255.255.255",
]
TENANTS = ("t-a", "t-b", "t-c")


@st.composite
def intervals(draw: st.DrawFn) -> list[tuple[datetime, datetime | None]]:
    """Disjoint half-open intervals on the bound grid, in order."""
    cuts = sorted(draw(st.sets(st.integers(0, 7), min_size=1, max_size=5)))
    spans: list[tuple[datetime, datetime | None]] = []
    for i, cut in enumerate(cuts):
        if draw(st.booleans()):
            until = INSTANTS[cuts[i + 1]] if i + 1 < len(cuts) else draw(st.sampled_from(
                [None, INSTANTS[7]] if cut < 7 else [None]))
            spans.append((INSTANTS[cut], until))
    return spans


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    nets: dict[str, list[NetworkAssignment]] = {t: [] for t in TENANTS}
    vnis: dict[str, list[VniAssignment]] = {t: [] for t in TENANTS}
    for cidr in draw(st.sets(st.sampled_from(CIDRS), max_size=6)):
        for start, until in draw(intervals()):
            nets[draw(st.sampled_from(TENANTS))].append(NetworkAssignment(
                cidr=ip_network(cidr), valid_from=start, valid_until=until))
    for vni in draw(st.sets(st.sampled_from([1, 2, 3]), max_size=3)):
        for start, until in draw(intervals()):
            vnis[draw(st.sampled_from(TENANTS))].append(VniAssignment(
                vni=vni, valid_from=start, valid_until=until))
    site = Site(name="s", country="MY", ingest_stations=(),
                networks=tuple(ip_network(n) for n in draw(st.sets(st.sampled_from(SITE_NETS)))))
    return Inventory(site=site, concern_countries=(), tenants=tuple(
        Tenant(id=t, name=t, registered=BASE, country="MY", parent_country=None, kyc="basic",
               payment="card", predecessor=None, identifiers=Identifiers(), offboarded=None,
               networks=tuple(nets[t]), vnis=tuple(vnis[t]))
        for t in TENANTS
    ))


def conn_batch(rows: list[dict[str, Any]]) -> pa.RecordBatch:
    defaults: dict[str, Any] = {"interim": False, "line": 1}
    columns = {
        f.name: pa.array([row.get(f.name, defaults.get(f.name)) for row in rows], f.type)
        for f in CONN_SCHEMA
    }
    return pa.RecordBatch.from_pydict(columns, schema=CONN_SCHEMA.with_metadata(
        {b"egress.path": b"conn.log"}))


volumes = st.one_of(st.none(), st.integers(0, 3))
rows_strategy = st.lists(st.fixed_dictionaries({
    "ts": st.one_of(st.none(), st.sampled_from(INSTANTS)),
    "orig_h": st.one_of(st.none(), st.sampled_from(ADDRESSES)),
    "resp_h": st.one_of(st.none(), st.sampled_from(ADDRESSES)),
    "vni": st.one_of(st.none(), st.sampled_from([1, 2, 3, 99])),
    "delta_orig_ip_bytes": volumes,
    "delta_resp_ip_bytes": volumes,
}), max_size=60)


@pytest.fixture(scope="module")
def geo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RangeCsvGeo]:
    where = tmp_path_factory.mktemp("geo")
    country = where / "country.csv"
    country.write_text("8.8.8.0,8.8.8.255,US\n198.51.100.0,198.51.100.255,MY\n"
                       "203.0.113.0,203.0.113.255,CN\n2001:db8::,2001:db8:ffff:ffff::,SG\n",
                       encoding="utf-8")
    asn = where / "asn.csv"
    asn.write_text("8.8.8.0,8.8.8.255,15169,Google\n1.1.1.0,1.1.1.255,13335,Cloudflare\n",
                   encoding="utf-8")
    with RangeCsvGeo([country, asn]) as lookup:
        yield lookup


def both_ways(inventory: Inventory, geo: GeoLookup | None,
              batches: list[pa.RecordBatch]) -> None:
    """Assert that column-wise and row-wise attribution agree, counters included."""
    fast, slow = Attributor(inventory, geo), Attributor(inventory, geo)
    for batch in batches:
        got, want = fast.attribute_batch(batch), slow._attribute_batch_rows(batch)
        assert got.schema == want.schema
        for f in ATTRIBUTION_FIELDS:
            assert got.column(f.name).to_pylist() == want.column(f.name).to_pylist(), f.name
        assert got.equals(want)
    assert fast.stats() == slow.stats()


@pytest.fixture(scope="module")
def mmdb_geo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GeoLookup]:
    """A MaxMind DB with countries and AS numbers: geo that compiled code leaves to Python."""
    path = tmp_path_factory.mktemp("mmdb") / "geo.mmdb"
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-Test")
    for net, country, asn in (("8.8.8.0/24", "US", 15169), ("203.0.113.0/24", "CN", 64500),
                              ("198.51.100.0/24", "MY", 64502), ("2001:db8::/32", "SG", 64501)):
        writer.insert_network(IPSet([net]), {"country": {"iso_code": country},
                                             "autonomous_system_number": MmdbU32(asn)})
    writer.to_db_file(str(path))
    with load_geo([path]) as lookup:
        yield lookup


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventory=inventories(), rows=rows_strategy, geo_kind=st.sampled_from(
    ["none", "ranges", "mmdb"]))
def test_matches_row_rules(inventory: Inventory, rows: list[dict[str, Any]], geo_kind: str,
                           geo: RangeCsvGeo, mmdb_geo: GeoLookup) -> None:
    chosen = {"none": None, "ranges": geo, "mmdb": mmdb_geo}[geo_kind]
    both_ways(inventory, chosen, [conn_batch(rows)])


def test_compiled_code_solves_dotted_quads_and_leaves_the_rest(
        geo: RangeCsvGeo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only rows with an address that is not a dotted quad, or a time past 2**53
    microseconds, go to the numpy path; the answers are the row rules' either way."""
    import egress.attribution_batch as batch_module

    seen: list[int] = []
    numpy_path = batch_module.ConnBatchAttributor._solve_columns

    def spy(self: Any, batch: pa.RecordBatch) -> Any:
        seen.append(batch.num_rows)
        return numpy_path(self, batch)

    monkeypatch.setattr(batch_module.ConnBatchAttributor, "_solve_columns", spy)
    inventory = Inventory(site=Site(name="s", country="MY", ingest_stations=(),
                                    networks=(ip_network("10.0.0.0/8"),)),
                          concern_countries=(), tenants=(
        tenant("t-a", ("10.1.2.0/24", BASE, None), ("2001:db8:100:1::/64", BASE, None)),))
    quads: list[dict[str, Any]] = [{"ts": BASE, "orig_h": "8.8.8.8", "resp_h": "10.1.2.3",
              "delta_orig_ip_bytes": 5, "delta_resp_ip_bytes": 1},
             {"ts": None, "orig_h": "bogus", "resp_h": None}]
    others: list[dict[str, Any]] = [{"ts": BASE, "orig_h": "2001:db8:100:1::5", "resp_h": "1.1.1.1",
               "delta_orig_ip_bytes": 1, "delta_resp_ip_bytes": 5},
              {"ts": INSTANTS[-1], "orig_h": "8.8.8.8", "resp_h": "10.1.2.3"},
              {"ts": BASE, "orig_h": "010.1.2.3", "resp_h": "8.8.8.8"}]
    both_ways(inventory, geo, [conn_batch(quads)])
    assert seen == []
    both_ways(inventory, geo, [conn_batch(quads + others)])
    assert seen == [3]
    got = Attributor(inventory, geo).attribute_batch(conn_batch(quads + others))
    assert got.column("tenant").to_pylist() == ["t-a", None, "t-a", "t-a", None]
    assert got.column("remote_country").to_pylist() == ["US", None, None, "US", None]
    assert got.column("remote_asn").to_pylist() == [15169, None, 13335, 15169, None]


@settings(max_examples=50, deadline=None)
@given(inventory=inventories(), first=rows_strategy, second=rows_strategy)
def test_counters_add_up_over_batches(inventory: Inventory, first: list[dict[str, Any]],
                                      second: list[dict[str, Any]], geo: RangeCsvGeo) -> None:
    both_ways(inventory, geo, [conn_batch(first), conn_batch(second), conn_batch(first)])


@pytest.mark.parametrize("other_per_row", [0, 10_000])
def test_row_and_dictionary_modes(other_per_row: int, geo: RangeCsvGeo,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses resolved once per distinct address or row by row: the same answers."""
    import egress.attribution_batch as batch_module

    monkeypatch.setattr(batch_module, "_OTHER_PER_ROW", other_per_row)
    rng = np.random.default_rng(7)
    inventory = Inventory(site=Site(name="s", country="MY", ingest_stations=(),
                                    networks=(ip_network("10.0.0.0/8"),)),
                          concern_countries=(), tenants=(
        tenant("t-a", ("10.1.2.0/24", BASE, None), ("2001:db8:100:1::/64", BASE, None)),
        tenant("t-b", ("10.1.0.0/16", BASE, None))))
    rows = [{"ts": INSTANTS[int(rng.integers(0, 8))],
             "orig_h": ADDRESSES[int(rng.integers(0, len(ADDRESSES)))],
             "resp_h": ADDRESSES[int(rng.integers(0, len(ADDRESSES)))],
             "delta_orig_ip_bytes": int(rng.integers(0, 3)),
             "delta_resp_ip_bytes": int(rng.integers(0, 3))} for _ in range(500)]
    both_ways(inventory, geo, [conn_batch(rows)])


def tenant(tid: str, *nets: tuple[str, datetime, datetime | None]) -> Tenant:
    return Tenant(id=tid, name=tid, registered=BASE, country="MY", parent_country=None,
                  kyc="basic", payment="card", predecessor=None, identifiers=Identifiers(),
                  offboarded=None, networks=tuple(
                      NetworkAssignment(cidr=ip_network(c), valid_from=f, valid_until=u)
                      for c, f, u in nets))


def test_range_with_many_holders_over_time() -> None:
    days = [BASE + timedelta(days=d) for d in range(12)]
    # 10.1.2.0/24 passes between two tenants every day; the /16 around it is t-c's for good
    a = tenant("t-a", *[("10.1.2.0/24", days[d], days[d + 1]) for d in range(0, 10, 2)])
    b = tenant("t-b", *[("10.1.2.0/24", days[d], days[d + 1]) for d in range(1, 10, 2)])
    c = tenant("t-c", ("10.1.0.0/16", days[0], None))
    site = Site(name="s", country="MY", networks=(), ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=(a, b, c))
    at = [BASE - timedelta(hours=1), *(d + timedelta(hours=12) for d in days), days[5]]
    rows = [{"ts": t, "orig_h": "10.1.2.3", "resp_h": "8.8.8.8", "delta_orig_ip_bytes": 5,
             "delta_resp_ip_bytes": 1} for t in at]
    out = Attributor(inventory).attribute_batch(conn_batch(rows))
    assert out.column("tenant").to_pylist() == [
        None, "t-a", "t-b", "t-a", "t-b", "t-a", "t-b", "t-a", "t-b", "t-a", "t-b", "t-c",
        "t-c", "t-b",
    ]
    assert out.column("direction").to_pylist() == [*["unknown"], *["outbound"] * 13]
    assert out.column("remote_addr").to_pylist() == [None, *["8.8.8.8"] * 13]
    assert out.column("cross_border").to_pylist() == [None] * 14
    both_ways(inventory, None, [conn_batch(rows)])


def test_range_held_once_edges() -> None:
    """A range with one span (what compiled code reads without a second load): held from
    its first microsecond, not at its end; the VNI the same."""
    days = [BASE + timedelta(days=d) for d in range(3)]
    a = tenant("t-a", ("10.1.2.0/24", days[1], days[2]))
    site = Site(name="s", country="MY", networks=(), ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=(a,))
    us = timedelta(microseconds=1)
    at = [days[1] - us, days[1], days[2] - us, days[2], days[0]]
    rows = [{"ts": t, "orig_h": "10.1.2.3", "resp_h": "8.8.8.8", "delta_orig_ip_bytes": 5,
             "delta_resp_ip_bytes": 1} for t in at]
    out = Attributor(inventory).attribute_batch(conn_batch(rows))
    assert out.column("tenant").to_pylist() == [None, "t-a", "t-a", None, None]
    both_ways(inventory, None, [conn_batch(rows)])


def test_remote_columns(geo: RangeCsvGeo) -> None:
    site = Site(name="s", country="MY", networks=(ip_network("10.0.0.0/8"),),
                ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=(
        tenant("t-a", ("10.1.0.0/16", BASE, None)), tenant("t-b", ("10.2.0.0/16", BASE, None))))
    at = BASE + timedelta(days=1)
    pairs = [("8.8.8.8", "10.1.0.1", 9, 1), ("10.1.0.1", "198.51.100.1", 1, 9),
             ("10.1.0.1", "10.2.0.1", 9, 1), ("10.1.0.1", "10.9.9.9", 1, 1),
             ("10.1.0.1", "1.1.1.1", 1, 1), ("10.1.0.1", "10.1.0.2", 1, 2)]
    rows = [{"ts": at, "orig_h": o, "resp_h": r, "delta_orig_ip_bytes": bo,
             "delta_resp_ip_bytes": br} for o, r, bo, br in pairs]
    out = Attributor(inventory, geo).attribute_batch(conn_batch(rows))
    got = [out.column(name).to_pylist() for name in (
        "tenant", "direction", "remote_addr", "remote_country", "remote_asn", "cross_border")]
    assert got == [
        ["t-a", "t-a", "t-b", "t-a", "t-a", "t-a"],
        ["inbound", "inbound", "internal", "internal", "unknown", "internal"],
        ["8.8.8.8", "198.51.100.1", "10.1.0.1", "10.9.9.9", "1.1.1.1", None],
        ["US", "MY", None, None, None, None],
        [15169, None, None, None, 13335, None],
        [True, False, False, False, None, None],
    ]
    both_ways(inventory, geo, [conn_batch(rows)])


def test_empty_batch_and_empty_inventory() -> None:
    site = Site(name="s", country="MY", networks=(), ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=())
    attributor = Attributor(inventory)
    out = attributor.attribute_batch(conn_batch([]))
    assert out.num_rows == 0
    assert out.schema.names[-len(ATTRIBUTION_FIELDS):] == [f.name for f in ATTRIBUTION_FIELDS]
    out = attributor.attribute_batch(conn_batch([{"ts": BASE, "orig_h": "8.8.8.8",
                                                  "resp_h": "1.1.1.1", "vni": 7}]))
    assert out.column("how").to_pylist() == ["unattributed"]
    assert attributor.stats().reasons == {("conn", "unknown_vni"): 1}


@settings(max_examples=100, deadline=None)
@given(numbers=st.lists(st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x08080800, 0x080808FF, 0x08080900, 0x01010100, 0x0A000001, 0xCB007140,
                     0xC6336400, 0xC63364FF, 0xFFFFFFFF, 0]),
), max_size=40))
def test_geo_column_lookup_matches_lookup(numbers: list[int], geo: RangeCsvGeo) -> None:
    answers = geo.lookup_ipv4(np.array(numbers, np.uint64))
    for i, number in enumerate(numbers):
        info = geo.lookup(str(IPv4Address(number)))
        code = int(answers.country[i])
        assert (answers.countries[code] if code >= 0 else None) == info.country
        assert (int(answers.asn[i]) if answers.asn[i] >= 0 else None) == info.asn


@settings(max_examples=100, deadline=None)
@given(numbers=st.lists(st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0x08080800, 0x080807FF, 0x080808FF, 0x08080900, 0x01010100, 0x010101FF,
                     0x0A000001, 0xCB007140, 0xC6336400, 0xC63364FF, 0xFFFFFFFF, 0]),
), max_size=40))
def test_geo_ranges_answer_like_the_column_lookup(numbers: list[int], geo: RangeCsvGeo) -> None:
    """One table of disjoint ranges (for compiled code) gives lookup_ipv4's answers."""
    ranges = ipv4_ranges(geo)
    assert ranges is not None
    assert (ranges.starts[1:] > ranges.ends[:-1]).all() and (ranges.starts <= ranges.ends).all()
    answers = geo.lookup_ipv4(np.array(numbers, np.uint64))
    for i, number in enumerate(numbers):
        at = int(np.searchsorted(ranges.starts, number, side="right")) - 1
        hit = at >= 0 and number <= int(ranges.ends[at])
        country = int(ranges.country[at]) if hit else -1
        want = int(answers.country[i])
        assert (ranges.countries[country] if country >= 0 else None) == (
            answers.countries[want] if want >= 0 else None)
        assert (int(ranges.asn[at]) if hit else -1) == int(answers.asn[i])


def test_geo_ranges_of_what_has_none(mmdb_geo: GeoLookup) -> None:
    assert ipv4_ranges(mmdb_geo) is None


def test_geo_database_of_range_files_merges_like_lookup(tmp_path: Path) -> None:
    first = tmp_path / "asn.tsv"
    first.write_text("8.8.8.0\t8.8.8.255\t15169\tUS\tGOOGLE\n9.9.9.0\t9.9.9.255\t19281\tNone\tQ9\n",
                     encoding="utf-8")
    second = tmp_path / "country.csv"
    second.write_text("9.9.9.0,9.9.9.127,CH\n8.8.8.0,8.8.8.255,DE\n", encoding="utf-8")
    numbers = [0x08080808, 0x09090901, 0x090909F0, 0x01010101]
    with load_geo([first, second]) as database:
        look = ipv4_lookup(database)
        assert look is not None
        answers = look(np.array(numbers, np.uint64))
        countries = [answers.countries[c] if c >= 0 else None for c in answers.country]
        assert countries == ["US", "CH", None, None]
        assert answers.asn.tolist() == [15169, 19281, 19281, -1]
        ranges = ipv4_ranges(database)
        assert ranges is not None
        assert [(int(a), int(b), ranges.countries[c] if c >= 0 else None, int(n))
                for a, b, c, n in zip(ranges.starts, ranges.ends, ranges.country, ranges.asn,
                                      strict=True)] == [
            (0x08080800, 0x080808FF, "US", 15169), (0x09090900, 0x0909097F, "CH", 19281),
            (0x09090980, 0x090909FF, None, 19281)]
        for i, number in enumerate(numbers):
            info = database.lookup(str(IPv4Address(number)))
            assert (countries[i], info.asn) == (info.country, answers.asn[i] if i < 3 else None)


def test_naive_times_are_refused() -> None:
    site = Site(name="s", country="MY", networks=(), ingest_stations=())
    inventory = Inventory(site=site, concern_countries=(), tenants=())
    batch = conn_batch([{"ts": BASE, "orig_h": "8.8.8.8", "resp_h": "1.1.1.1"}])
    naive = batch.set_column(0, "ts", batch.column("ts").cast(pa.timestamp("us")))
    with pytest.raises(ValueError, match="conn batch column ts has no time zone"):
        Attributor(inventory).attribute_batch(naive)


def test_inventory_spans_of_an_address() -> None:
    inventory = load_inventory(Path(__file__).parent / "data" / "inventory" / "inventory.yaml")
    found = inventory.address_timelines("10.42.7.9")
    assert [key for key, _ in found] == [(4, 24, 0x0A2A07), (4, 16, 0x0A2A)]
    assert [timeline.owners for _, timeline in found] == [
        ("t-0050",), ("t-0017", "t-0042", "t-0050")]
    assert inventory.address_timelines("2001:db8:100:42::1")[0][0][:2] == (6, 64)
    assert inventory.address_timelines("8.8.8.8") == ()
    assert set(inventory.network_timelines()) == {
        (4, 16, 0x0A2A), (4, 24, 0x0A2A07), (6, 64, 0x20010DB8_01000042)}
    assert inventory.vni_timelines()[4242].owners == ("t-0017", "t-0042")


# -- IPv4 text parsed in C (egress._wincore.ipv4_numbers) ---------------------------------

QUAD_EDGES = ["0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3", "1.2.3.4.",
              " 1.2.3.4", "1.2.3.4\n", "\u0661.2.3.4", "", "1.2.3.4", "1.2.3.04", "1.2.3.0",
              "1..2.3", ".1.2.3", "1.2.3.4.5", "1234.1.1.1", "1.2.3.255", "1.2.3.256",
              "+1.2.3.4", "-1.2.3.4", "0x1.2.3.4", "1.2.3.4 ", "1.2.3.4/32", "::1",
              "1.2.3.4\x00", "\uff11.2.3.4", "1.2.3.999", "001.2.3.4", "0.0.0.00",
              "1,2.3.4", "1.2.3:4"]
OCTETS = st.one_of(st.integers(0, 300).map(str),
                   st.sampled_from(["00", "01", "000", "010", "0255", "+1", "-0", " 1", "1 ",
                                    "\u0661", "\u0663\u0662", "0x1", "", "2550", "1e2"]))


def ipv4_reference(text: str | None) -> int:
    """What Python's ipaddress makes of ``text`` as an IPv4 address (-1: not one)."""
    if text is None:
        return -1
    try:
        return int(IPv4Address(text))
    except AddressValueError:
        return -1


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(texts=st.lists(st.one_of(
    st.none(), st.sampled_from(QUAD_EDGES),
    st.lists(OCTETS, min_size=1, max_size=5).map(".".join),
    st.builds(str.join, st.sampled_from([",", " ", "..", ":", "\u00b7"]),
              st.lists(OCTETS, min_size=1, max_size=5)),
    st.text(alphabet="0123456789.\u0661 \n+x", max_size=18), st.text(max_size=8),
), max_size=30), cut=st.integers(0, 5), large=st.booleans())
def test_dotted_quads_match_ipaddress(texts: list[str | None], cut: int, large: bool) -> None:
    """Exactly the strings ``IPv4Address`` accepts, with its value; sliced arrays, nulls
    and large strings too."""
    array = pa.array(texts, pa.large_string() if large else pa.string()).slice(cut)
    expected = [ipv4_reference(text) for text in texts[cut:]]
    assert _dotted_quads(array).tolist() == expected


def test_dotted_quad_edges() -> None:
    got = _dotted_quads(pa.array([*QUAD_EDGES, None]))
    assert got.tolist() == [ipv4_reference(text) for text in QUAD_EDGES] + [-1]
    assert got[:3].tolist() == [0, 2**32 - 1, -1]
    assert [text for text, number in zip(QUAD_EDGES, got, strict=False) if number >= 0] == [
        "0.0.0.0", "255.255.255.255", "1.2.3.4", "1.2.3.0", "1.2.3.255"]
    assert _dotted_quads(pa.array([], pa.string())).tolist() == []
    assert _dotted_quads(pa.array([None, None], pa.string())).tolist() == [-1, -1]
