"""Remote country and ASN lookups: MaxMind DB and range files give the same exact answers."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from mmdb_writer import MmdbU32, MMDBWriter
from netaddr import IPSet

from egress.errors import ConfigError
from egress.geo import (
    UNKNOWN,
    GeoInfo,
    MmdbGeo,
    RangeCsvGeo,
    is_cross_border,
    load_geo,
)

CN = GeoInfo(country="CN", asn=64500, as_org="Example Transit")
MY = GeoInfo(country="MY", asn=64502, as_org="Example Kuala")
SG = GeoInfo(country="SG", asn=64501, as_org="Example Six, Ltd")

#: Address -> expected answer, shared by every source layout.
EXPECTED = {
    "203.0.113.0": CN,
    "203.0.113.77": CN,
    "203.0.113.255": CN,
    "198.51.100.1": MY,
    "::ffff:198.51.100.1": MY,
    "2001:db8:200::": SG,
    "2001:db8:200:ffff:ffff:ffff:ffff:ffff": SG,
    "203.0.112.255": UNKNOWN,
    "203.0.114.0": UNKNOWN,
    "192.0.2.1": UNKNOWN,  # iptoasn says "not routed" here; the others know nothing
    "2001:db8:1ff:ffff:ffff:ffff:ffff:ffff": UNKNOWN,
    "2001:db8:201::": UNKNOWN,
    "8.8.8.8": UNKNOWN,
}

#: (network, country, AS number, AS organization) as written into the test databases.
NETWORKS = [
    ("203.0.113.0/24", "CN", 64500, "Example Transit"),
    ("198.51.100.0/24", "MY", 64502, "Example Kuala"),
    ("2001:db8:200::/48", "SG", 64501, "Example Six, Ltd"),
]

DBIP_COUNTRY = (
    "2001:db8:200::,2001:db8:200:ffff:ffff:ffff:ffff:ffff,SG\n"  # unsorted on purpose
    "203.0.113.0,203.0.113.255,CN\n"
    "198.51.100.0,198.51.100.255,MY\n"
)
DBIP_ASN = (
    "203.0.113.0,203.0.113.255,64500,Example Transit\n"
    '2001:db8:200::,2001:db8:200:ffff:ffff:ffff:ffff:ffff,64501,"Example Six, Ltd"\n'
    "198.51.100.0,198.51.100.255,64502,Example Kuala\n"
)
DBIP_CITY = (
    "203.0.113.0,203.0.113.255,AS,CN,Beijing,Beijing,39.9042,116.407\n"
    "198.51.100.0,198.51.100.255,AS,MY,Kuala Lumpur,Kuala Lumpur,3.139,101.6869\n"
    "2001:db8:200::,2001:db8:200:ffff:ffff:ffff:ffff:ffff,AS,SG,Singapore,Singapore,1.29,103.85\n"
)
IPTOASN = (
    "192.0.2.0\t192.0.2.255\t0\tNone\tNot routed\n"
    "198.51.100.0\t198.51.100.255\t64502\tMY\tExample Kuala\n"
    "203.0.113.0\t203.0.113.255\t64500\tCN\tExample Transit\n"
    "2001:db8:200::\t2001:db8:200:ffff:ffff:ffff:ffff:ffff\t64501\tSG\tExample Six, Ltd\n"
)


def _write_mmdb(
    path: Path, networks: list[tuple[str, dict[str, object]]], *, v6: bool = True
) -> Path:
    writer = MMDBWriter(
        ip_version=6 if v6 else 4, ipv4_compatible=v6, database_type="GeoLite2-Test"
    )
    for network, content in networks:
        writer.insert_network(IPSet([network]), content)
    writer.to_db_file(str(path))
    return path


def _country_mmdb(path: Path) -> Path:
    return _write_mmdb(
        path, [(net, {"country": {"iso_code": country}}) for net, country, _, _ in NETWORKS]
    )


def _asn_mmdb(path: Path) -> Path:
    return _write_mmdb(
        path,
        [
            (
                net,
                {
                    "autonomous_system_number": MmdbU32(asn),
                    "autonomous_system_organization": org,
                },
            )
            for net, _, asn, org in NETWORKS
        ],
    )


def _text(path: Path, content: str) -> Path:
    path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def mmdb_paths(tmp_path: Path) -> list[Path]:
    return [
        _country_mmdb(tmp_path / "GeoLite2-Country.mmdb"),
        _asn_mmdb(tmp_path / "GeoLite2-ASN.mmdb"),
    ]


def _layouts(tmp_path: Path) -> dict[str, list[Path]]:
    gz = tmp_path / "ip2asn-combined.tsv.gz"
    gz.write_bytes(gzip.compress(IPTOASN.encode()))
    return {
        "mmdb": [_country_mmdb(tmp_path / "c.mmdb"), _asn_mmdb(tmp_path / "a.mmdb")],
        "dbip": [
            _text(tmp_path / "dbip-country-lite.csv", DBIP_COUNTRY),
            _text(tmp_path / "dbip-asn-lite.csv", DBIP_ASN),
        ],
        "dbip-city": [
            _text(tmp_path / "dbip-city-lite.csv", DBIP_CITY),
            _text(tmp_path / "dbip-asn-lite.csv", DBIP_ASN),
        ],
        "iptoasn": [_text(tmp_path / "ip2asn-combined.tsv", IPTOASN)],
        "iptoasn-gz": [gz],
        "mixed": [_country_mmdb(tmp_path / "c2.mmdb"), gz],
    }


@pytest.mark.parametrize("layout", ["mmdb", "dbip", "dbip-city", "iptoasn", "iptoasn-gz", "mixed"])
def test_every_layout_gives_the_same_answers(tmp_path: Path, layout: str) -> None:
    with load_geo(_layouts(tmp_path)[layout]) as geo:
        got = {addr: geo.lookup(addr) for addr in EXPECTED}
    assert got == EXPECTED


def test_mmdb_geo_two_databases(mmdb_paths: list[Path]) -> None:
    with MmdbGeo(mmdb_paths) as geo:
        assert geo.lookup("203.0.113.9") == CN
        assert geo.lookup("2001:db8:200::1") == SG
        assert geo.lookup("198.51.100.200") == MY
        assert geo.lookup("203.0.113.9") == CN  # answered from the cache
        assert geo.lookup("8.8.4.4") == UNKNOWN


def test_mmdb_country_only_database(tmp_path: Path) -> None:
    with MmdbGeo([_country_mmdb(tmp_path / "c.mmdb")]) as geo:
        assert geo.lookup("203.0.113.9") == GeoInfo(country="CN", asn=None, as_org=None)


def test_mmdb_registered_country_is_the_fallback(tmp_path: Path) -> None:
    path = _write_mmdb(
        tmp_path / "c.mmdb",
        [
            ("192.0.2.0/25", {"registered_country": {"iso_code": "US"}}),
            (
                "192.0.2.128/25",
                {"country": {"iso_code": "de"}, "registered_country": {"iso_code": "US"}},
            ),
        ],
    )
    with MmdbGeo([path]) as geo:
        assert geo.lookup("192.0.2.1") == GeoInfo(country="US", asn=None, as_org=None)
        assert geo.lookup("192.0.2.129") == GeoInfo(country="DE", asn=None, as_org=None)


def test_mmdb_ipv4_only_database_does_not_know_ipv6(tmp_path: Path) -> None:
    path = _write_mmdb(
        tmp_path / "v4.mmdb", [("203.0.113.0/24", {"country": {"iso_code": "CN"}})], v6=False
    )
    with MmdbGeo([path]) as geo:
        assert geo.lookup("203.0.113.1").country == "CN"
        assert geo.lookup("2001:db8:200::1") == UNKNOWN


def test_range_boundaries_of_adjacent_ranges(tmp_path: Path) -> None:
    path = _text(
        tmp_path / "dbip-country-lite.csv",
        "1.0.0.0,1.0.0.0,FR\n"
        "1.0.0.1,1.0.0.127,DE\n"
        "1.0.0.128,1.0.0.255,NL\n"
        "1.0.2.0,1.0.2.255,ZZ\n"
        "::1:0,::1:ffff,JP\n",
    )
    geo = RangeCsvGeo([path])
    expected = {
        "0.255.255.255": None,
        "1.0.0.0": "FR",  # a one-address range
        "1.0.0.1": "DE",
        "1.0.0.127": "DE",
        "1.0.0.128": "NL",
        "1.0.0.255": "NL",
        "1.0.1.0": None,
        "1.0.2.7": None,  # ZZ is DB-IP's unknown
        "::0:ffff": None,
        "::1:0": "JP",
        "::1:ffff": "JP",
        "::2:0": None,
    }
    assert {addr: geo.lookup(addr).country for addr in expected} == expected


def test_csv_header_row_is_skipped(tmp_path: Path) -> None:
    path = _text(tmp_path / "country.csv", "ip_start,ip_end,country\n" + DBIP_COUNTRY)
    assert RangeCsvGeo([path]).lookup("198.51.100.5").country == "MY"


PRIVATE = [
    "10.1.2.3",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.255",
    "127.0.0.1",
    "169.254.10.10",
    "0.0.0.0",
    "224.0.0.251",
    "255.255.255.255",
    "::1",
    "::",
    "fd00::1",
    "fc00::1",
    "fe80::1",
    "ff02::1",
    "::ffff:10.0.0.1",
]


@pytest.mark.parametrize("addr", PRIVATE)
def test_private_addresses_are_never_looked_up(tmp_path: Path, addr: str) -> None:
    everything = _text(
        tmp_path / "dbip-country-lite.csv",
        "0.0.0.0,255.255.255.255,DE\n::,ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff,DE\n",
    )
    geo = RangeCsvGeo([everything])
    assert geo.lookup("8.8.8.8").country == "DE"
    assert geo.lookup("2606:4700::1").country == "DE"
    assert geo.lookup(addr) == UNKNOWN


@pytest.mark.parametrize("addr", ["10.0.0.1", "fd12::1", "100.64.3.4"])
def test_private_addresses_are_never_looked_up_in_mmdb(tmp_path: Path, addr: str) -> None:
    path = _write_mmdb(
        tmp_path / "all.mmdb",
        [(half, {"country": {"iso_code": "DE"}}) for half in ("::/1", "8000::/1")],
    )
    with MmdbGeo([path]) as geo:
        assert geo.lookup("8.8.8.8").country == "DE"
        assert geo.lookup(addr) == UNKNOWN


def test_not_an_address_is_a_value_error(tmp_path: Path) -> None:
    geo = RangeCsvGeo([_text(tmp_path / "c.csv", DBIP_COUNTRY)])
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        geo.lookup("example.com")


def test_is_cross_border() -> None:
    assert is_cross_border("MY", CN) is True
    assert is_cross_border("my", MY) is False
    assert is_cross_border("SG", SG) is False
    assert is_cross_border("SG", UNKNOWN) is None
    assert is_cross_border("SG", GeoInfo(country=None, asn=64500, as_org="Example Transit")) is None


BAD_RANGES = [
    ("1.0.0.0,1.0.0.255,AU\nnot-an-ip,1.0.1.255,AU\n", r":2: bad range start 'not-an-ip'"),
    ("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1,AU\n", r":2: bad range end '1.0.1'"),
    ("1.0.0.0,1.0.0.255,AU\n1.0.1.0,::1,AU\n", r":2: range mixes IPv4 and IPv6"),
    ("1.0.0.255,1.0.0.0,AU\n", r":1: range ends before it starts"),
    ("1.0.0.0,1.0.0.255,AUS\n", r":1: bad country code 'AUS'"),
    ("1.0.0.0,1.0.0.255,AU\n1.0.1.0,1.0.1.255,13335,Cloudflare\n", r":2: expected a dbip-country"),
    ("1.0.0.0,1.0.0.255,AU,x,y,z\n", r":1: unrecognized geo range layout \(6 fields\)"),
    ("1.0.1.0,1.0.1.255,AU\n1.0.0.0,1.0.1.0,AU\n", r":1: range overlaps the range on line 2"),
    ("1.0.0.0\t1.0.0.255\t13335\tUSA\tCLOUDFLARENET\n", r":1: bad country code 'USA'"),
    ("1.0.0.0,1.0.0.255,x13335,Cloudflare\n", r":1: unrecognized geo range layout"),
    ("", r": no ranges in geo range file"),
    ("\xff\xfe", r": cannot read geo range file"),
]


@pytest.mark.parametrize(("content", "message"), BAD_RANGES)
def test_bad_range_file_is_a_config_error_with_file_and_line(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ConfigError, match=rf"^{path}{message}"):
        load_geo([path])


def test_bad_mmdb_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    plain = _text(tmp_path / "GeoLite2-City.mmdb", "not a database\n")
    with pytest.raises(ConfigError, match=rf"^{plain}: not a MaxMind DB file"):
        load_geo([plain])
    marked = tmp_path / "broken"
    marked.write_bytes(b"\x00" * 64 + b"\xab\xcd\xefMaxMind.com" + b"\x00" * 8)
    with pytest.raises(ConfigError, match=rf"^{marked}: not a readable MaxMind DB file"):
        load_geo([marked])
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'missing.mmdb'}: not a readable"):
        MmdbGeo([tmp_path / "missing.mmdb"])


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'nope.csv'}: cannot read geo file"):
        load_geo([tmp_path / "nope.csv"])


def test_no_files_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="no geo files given"):
        load_geo([])
