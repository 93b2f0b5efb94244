"""The tenant inventory: loading in three forms, validation errors, time-aware lookups."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Network
from pathlib import Path
from typing import Any

import pytest
import yaml

from egress.errors import ConfigError
from egress.inventory import (
    Allocation,
    Identifiers,
    Inventory,
    MediaImport,
    MediaImportRef,
    NetworkAssignment,
    SharedIdentity,
    Tenant,
    VniAssignment,
    load_inventory,
)
from egress.inventory_index import Conflict, Span, Timeline, build_timelines

DATA = Path(__file__).parent / "data" / "inventory"
SAMPLE = DATA / "inventory.yaml"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SAMPLE)


def sample_data() -> dict[str, Any]:
    data = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def write_json(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps(data, default=str), encoding="utf-8")
    return path


def minimal() -> dict[str, Any]:
    return {
        "site": {"name": "kul-1", "country": "MY", "networks": ["10.0.0.0/8"]},
        "concern_countries": ["CN"],
        "tenants": [
            {
                "id": f"t-{i}",
                "name": f"Tenant {i}",
                "registered": "2026-01-01",
                "country": "MY",
                "kyc": "basic",
                "payment": "card",
            }
            for i in range(4)
        ],
    }


# -- loading ------------------------------------------------------------------------------


def test_sample_loads_exactly(inventory: Inventory) -> None:
    assert inventory.site.name == "kul-1"
    assert inventory.site.networks == (IPv4Network("10.0.0.0/8"), IPv6Network("2001:db8:100::/48"))
    assert inventory.concern_countries == ("CN", "MO")
    assert [t.id for t in inventory.tenants] == ["t-0017", "t-0042", "t-0050"]
    assert inventory.tenant("t-0042") == Tenant(
        id="t-0042",
        name="Example AI Sdn Bhd",
        registered=utc(2026, 5, 2),
        country="MY",
        parent_country="CN",
        kyc="basic",
        payment="crypto",
        predecessor="t-0017",
        identifiers=Identifiers(
            payment_ref="PAY-9911", contacts=("ops@example.my", "+60 3 1234 5678")
        ),
        offboarded=None,
        networks=(
            NetworkAssignment(
                cidr=IPv4Network("10.42.0.0/16"),
                valid_from=utc(2026, 5, 2),
                valid_until=utc(2026, 7, 1),
            ),
            NetworkAssignment(
                cidr=IPv6Network("2001:db8:100:42::/64"),
                valid_from=utc(2026, 5, 2, 0, 30),  # 08:30+08:00
                valid_until=None,
            ),
        ),
        vnis=(VniAssignment(vni=4242, valid_from=utc(2026, 5, 2), valid_until=None),),
        buckets=("t0042-datasets", "t0042-*"),
        allocations=(
            Allocation(
                cluster="h100-pod-3",
                gpu_model="H100",
                gpus=2400,
                valid_from=utc(2026, 5, 10),
                valid_until=utc(2026, 8, 10),
            ),
            Allocation(
                cluster="h100-pod-4",
                gpu_model="H100",
                gpus=800,
                valid_from=utc(2026, 6, 1),
                valid_until=None,
            ),
        ),
        media_imports=(
            MediaImport(
                job="imp-77",
                received=utc(2026, 5, 20),
                serials=("ZR5A01", "ZR5A02"),
                target_buckets=("t0042-datasets",),
                copy_logs=("imp-77*.log",),
            ),
        ),
    )


def test_json_and_csv_forms_equal_yaml(inventory: Inventory, tmp_path: Path) -> None:
    assert load_inventory(DATA / "csv") == inventory
    assert load_inventory(write_json(tmp_path, sample_data())) == inventory
    unsuffixed = tmp_path / "inventory"
    unsuffixed.write_text(SAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert load_inventory(unsuffixed) == inventory


# -- lookups ------------------------------------------------------------------------------


def test_address_reassigned_over_time(inventory: Inventory) -> None:
    assert inventory.tenant_for_address("10.42.1.1", utc(2026, 4, 30, 23, 59)) == "t-0017"
    assert inventory.tenant_for_address("10.42.1.1", utc(2026, 5, 1, 12)) is None  # the gap
    assert inventory.tenant_for_address("10.42.1.1", utc(2026, 6, 30, 23, 59)) == "t-0042"
    assert inventory.tenant_for_address("10.42.1.1", utc(2026, 7, 1)) == "t-0050"
    assert inventory.tenant_for_address(IPv4Address("10.42.1.1"), utc(2027, 1, 1)) == "t-0050"


def test_longest_prefix_wins(inventory: Inventory) -> None:
    assert inventory.tenant_for_address("10.42.7.9", utc(2026, 6, 1)) == "t-0050"  # /24 in /16
    assert inventory.tenant_for_address("10.42.8.9", utc(2026, 6, 1)) == "t-0042"
    assert inventory.tenant_for_address("10.42.7.9", utc(2026, 3, 1)) == "t-0017"  # /24 not yet


def test_unknown_address_and_ipv6(inventory: Inventory) -> None:
    assert inventory.tenant_for_address("192.0.2.1", utc(2026, 6, 1)) is None
    assert inventory.tenant_for_address("2001:db8:100:42::5", utc(2026, 6, 1)) == "t-0042"
    assert inventory.tenant_for_address("2001:db8:100:43::5", utc(2026, 6, 1)) is None
    assert inventory.tenant_for_address("2001:db8:100:42::5", utc(2026, 5, 2, 0, 29)) is None


def test_naive_time_and_bad_address_are_misuse(inventory: Inventory) -> None:
    with pytest.raises(ValueError, match="naive"):
        inventory.tenant_for_address("10.42.1.1", datetime(2026, 6, 1))
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 address"):
        inventory.tenant_for_address("10.42.1", utc(2026, 6, 1))


def test_vni_by_time(inventory: Inventory) -> None:
    assert inventory.tenant_for_vni(4242, utc(2026, 1, 1)) == "t-0017"
    assert inventory.tenant_for_vni(4242, utc(2026, 5, 1, 6)) is None
    assert inventory.tenant_for_vni(4242, utc(2026, 5, 2)) == "t-0042"
    assert inventory.tenant_for_vni(9, utc(2026, 5, 2)) is None


def test_buckets_exact_beats_glob(inventory: Inventory) -> None:
    at = utc(2026, 6, 1)
    assert inventory.tenant_for_bucket("t0042-datasets", at) == "t-0042"
    assert inventory.tenant_for_bucket("t0042-models", at) == "t-0042"  # the glob
    assert inventory.tenant_for_bucket("t0042-datasets-mirror", at) == "t-0050"  # exact > glob
    assert inventory.tenant_for_bucket("t0017-data", at) is None  # offboarded
    assert inventory.tenant_for_bucket("t0017-data", utc(2026, 1, 1)) == "t-0017"
    assert inventory.tenant_for_bucket("t0042-models", utc(2026, 5, 1)) is None  # not yet
    assert inventory.tenant_for_bucket("other", at) is None


def test_drive_serials_and_copy_logs(inventory: Inventory) -> None:
    assert inventory.tenant_for_drive_serial("ZR5A01", utc(2026, 5, 19)) is None
    assert inventory.tenant_for_drive_serial("ZR5A01", utc(2026, 5, 20)) == MediaImportRef(
        "t-0042", "imp-77"
    )
    assert inventory.tenant_for_drive_serial("ZR5A02", utc(2026, 8, 1)) == ("t-0042", "imp-77")
    assert inventory.tenant_for_drive_serial("ZR5A02", utc(2026, 9, 1)) == ("t-0050", "imp-90")
    assert inventory.tenant_for_drive_serial("NOPE", utc(2026, 9, 1)) is None
    assert inventory.tenant_for_copy_log("/var/log/ingest/imp-77-2026-05-20.log") == (
        "t-0042",
        "imp-77",
    )
    assert inventory.tenant_for_copy_log("imp-90-a.log") == ("t-0050", "imp-90")
    assert inventory.tenant_for_copy_log("/var/log/imp-77.txt") is None


def test_site_and_ingest(inventory: Inventory) -> None:
    assert inventory.is_site_address("10.200.0.1")
    assert inventory.is_site_address("2001:db8:100:ffff::1")
    assert not inventory.is_site_address("192.0.2.1")
    assert inventory.is_ingest_station("10.9.0.11")
    assert not inventory.is_ingest_station("10.9.0.12")


def test_gpus_allocated(inventory: Inventory) -> None:
    assert inventory.gpus_allocated("t-0042", utc(2026, 5, 9)) == 0
    assert inventory.gpus_allocated("t-0042", utc(2026, 5, 10)) == 2400
    assert inventory.gpus_allocated("t-0042", utc(2026, 6, 1)) == 3200
    assert inventory.gpus_allocated("t-0042", utc(2026, 8, 10)) == 800
    assert inventory.gpus_allocated("t-0050", utc(2026, 6, 1)) == 0
    with pytest.raises(KeyError):
        inventory.gpus_allocated("t-9999", utc(2026, 6, 1))


def test_shared_identity(inventory: Inventory) -> None:
    assert inventory.shared_identity("t-0017") == (
        SharedIdentity("t-0042", "contact:ops@example.my"),
        SharedIdentity("t-0042", "payment_ref:PAY-9911"),
    )
    assert inventory.shared_identity("t-0050") == (
        SharedIdentity("t-0042", "bucket:t0042-datasets-mirror"),  # inside t-0042's glob
        SharedIdentity("t-0042", "serial:ZR5A02"),
    )


# -- validation ---------------------------------------------------------------------------


def test_yaml_errors_carry_line_and_path(tmp_path: Path) -> None:
    text = SAMPLE.read_text(encoding="utf-8").replace(
        "{cidr: 10.42.7.0/24, from: 2026-04-01}", "{cidr: 10.42.7.1/24, from: 2026-04-01}"
    )
    path = tmp_path / "inventory.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(
        ConfigError,
        match=r"^inventory\.yaml:45: tenants\[2\]\.networks\[0\]\.cidr: not a valid network: "
        r"10\.42\.7\.1/24 has host bits set$",
    ):
        load_inventory(path)


def test_yaml_unknown_key_and_duplicate_key(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(
        SAMPLE.read_text(encoding="utf-8").replace(
            "kyc: verified", "kyc: verified\n    colour: red"
        )
    )
    with pytest.raises(
        ConfigError, match=r"^inventory\.yaml:43: tenants\[2\]\.colour: unknown key$"
    ):
        load_inventory(path)
    path.write_text(
        SAMPLE.read_text(encoding="utf-8").replace("kyc: verified", "kyc: verified\n    kyc: basic")
    )
    with pytest.raises(
        ConfigError, match=r"^inventory\.yaml:43: not valid YAML: duplicate key 'kyc'"
    ):
        load_inventory(path)


def test_yaml_norway_is_a_country(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yaml"
    path.write_text(SAMPLE.read_text(encoding="utf-8").replace("country: SG", "country: NO"))
    assert load_inventory(path).tenant("t-0050").country == "NO"


def _mutate(data: dict[str, Any], dotted: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split(".")]
    node: Any = data
    for part in parents:
        node = node[part]
    node[last] = value
    return data


BAD = [
    ("tenants.3.country", "my", r"tenants\[3\]\.country: not an ISO 3166 alpha-2 country code"),
    ("tenants.1.parent_country", "CHN", r"tenants\[1\]\.parent_country: not an ISO 3166"),
    ("concern_countries.0", "Cn", r"concern_countries\[0\]: not an ISO 3166"),
    ("tenants.2.kyc", "strong", r"tenants\[2\]\.kyc: Input should be 'none', 'basic'"),
    ("tenants.2.payment", "cash", r"tenants\[2\]\.payment: Input should be 'card'"),
    ("tenants.2.registered", "2026-13-01", r"tenants\[2\]\.registered: not an ISO 8601 date"),
    ("tenants.2.registered", "2026-01-01T10:00:00", r"tenants\[2\]\.registered: .* no UTC offset"),
    (
        "tenants.2.offboarded",
        "2025-01-01",
        r"tenants\[2\]\.offboarded: 2025-01-01T00:00:00\+00:00 is before",
    ),
    (
        "tenants.3.networks",
        [{"cidr": "10.42.0.1/16", "from": "2026-01-01"}],
        r"tenants\[3\]\.networks\[0\]\.cidr: not a valid network: "
        r"10\.42\.0\.1/16 has host bits set",
    ),
    (
        "tenants.3.networks",
        [{"cidr": "10.42.0.0/33", "from": "2026-01-01"}],
        r"tenants\[3\]\.networks\[0\]\.cidr: not a valid network",
    ),
    (
        "tenants.3.networks",
        [{"cidr": "10.42.0.0/16", "from": "2026-02-01", "until": "2026-01-01"}],
        r"tenants\[3\]\.networks\[0\]\.until: 2026-01-01T00:00:00\+00:00 is before 2026-02-01",
    ),
    (
        "tenants.3.networks",
        [{"cidr": "10.42.0.0/16"}],
        r"tenants\[3\]\.networks\[0\]\.from: Field required",
    ),
    (
        "tenants.3.networks",
        [{"cidr": "10.42.0.0/16", "from": "2026-01-01", "owner": "x"}],
        r"tenants\[3\]\.networks\[0\]\.owner: unknown key",
    ),
    (
        "tenants.3.allocations",
        [{"cluster": "c", "gpu_model": "H100", "gpus": 0, "from": "2026-01-01"}],
        r"tenants\[3\]\.allocations\[0\]\.gpus: Input should be greater than 0",
    ),
    (
        "tenants.3.vnis",
        [{"vni": 1 << 24, "from": "2026-01-01"}],
        r"tenants\[3\]\.vnis\[0\]\.vni: Input should be less than or equal to 16777215",
    ),
    ("tenants.3.predecessor", "t-99", r"tenants\[3\]\.predecessor: unknown tenant 't-99'"),
    ("tenants.3.predecessor", "t-3", r"tenants\[3\]\.predecessor: a tenant cannot be its own"),
    ("tenants.3.id", "t-1", r"tenants\[3\]\.id: duplicate tenant id 't-1' \(also tenants\[1\]\)"),
    ("site.networks.0", "10.0.0.1/8", r"site\.networks\[0\]: not a valid network"),
    ("site.ingest_stations", ["10.9.0.300"], r"site\.ingest_stations\[0\]: not a valid address"),
    ("site.region", "apac", r"site\.region: unknown key"),
]


@pytest.mark.parametrize(("where", "value", "message"), BAD)
def test_rejected(tmp_path: Path, where: str, value: object, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^inventory\.json: {message}"):
        load_inventory(write_json(tmp_path, _mutate(minimal(), where, value)))


def test_overlapping_ranges_name_both_tenants(tmp_path: Path) -> None:
    data = minimal()
    data["tenants"][1]["networks"] = [
        {"cidr": "10.42.0.0/16", "from": "2026-01-01", "until": "2026-06-01"}
    ]
    data["tenants"][3]["networks"] = [
        {"cidr": "10.43.0.0/16", "from": "2026-01-01"},
        {"cidr": "10.42.0.0/16", "from": "2026-05-01"},
    ]
    with pytest.raises(
        ConfigError,
        match=r"^inventory\.json: tenants\[3\]\.networks\[1\]\.cidr: "
        r"range 10\.42\.0\.0/16 is held at overlapping times by "
        r"tenants\[1\] \(t-1\) networks\[0\] and tenants\[3\] \(t-3\) networks\[1\]$",
    ):
        load_inventory(write_json(tmp_path, data))
    data["tenants"][3]["networks"][1]["from"] = "2026-06-01"  # handed over: fine
    assert (
        load_inventory(write_json(tmp_path, data)).tenant_for_address("10.42.0.1", utc(2026, 6, 1))
        == "t-3"
    )


def test_overlapping_vnis_name_both_tenants(tmp_path: Path) -> None:
    data = minimal()
    data["tenants"][0]["vnis"] = [{"vni": 7, "from": "2026-01-01"}]
    data["tenants"][2]["vnis"] = [{"vni": 7, "from": "2027-01-01"}]
    with pytest.raises(
        ConfigError,
        match=r"tenants\[2\]\.vnis\[0\]\.vni: VNI 7 is held at overlapping times by "
        r"tenants\[0\] \(t-0\) vnis\[0\] and tenants\[2\] \(t-2\) vnis\[0\]",
    ):
        load_inventory(write_json(tmp_path, data))


def test_csv_errors_name_file_and_line(tmp_path: Path) -> None:
    for table in (DATA / "csv").iterdir():
        (tmp_path / table.name).write_text(table.read_text(encoding="utf-8"), encoding="utf-8")
    allocations = tmp_path / "allocations.csv"
    allocations.write_text(allocations.read_text(encoding="utf-8").replace(",800,", ",-8,"))
    with pytest.raises(
        ConfigError,
        match=r"^allocations\.csv:3: tenants\[1\]\.allocations\[1\]\.gpus: "
        r"Input should be greater than 0$",
    ):
        load_inventory(tmp_path)
    allocations.write_text(
        "tenant_id,cluster,gpu_model,gpus,from,until\nt-9,c,H100,1,2026-01-01,\n"
    )
    with pytest.raises(ConfigError, match=r"^allocations\.csv:2: tenant_id: unknown tenant 't-9'$"):
        load_inventory(tmp_path)
    allocations.write_text("tenant_id,cluster,gpus,colour\n")
    with pytest.raises(ConfigError, match=r"^allocations\.csv:1: unknown column 'colour'"):
        load_inventory(tmp_path)


def test_not_an_inventory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"a directory inventory needs tenants\.csv$"):
        load_inventory(tmp_path)
    with pytest.raises(ConfigError, match="cannot read inventory"):
        load_inventory(tmp_path / "missing.yaml")
    bad = tmp_path / "inventory.yaml"
    bad.write_text("site: [unclosed\n")
    with pytest.raises(ConfigError, match=r"^inventory\.yaml:2: not valid YAML"):
        load_inventory(bad)


# -- scale --------------------------------------------------------------------------------


def test_ten_thousand_tenants(tmp_path: Path) -> None:
    """Ten thousand tenants load; lookups go through per-prefix dicts, not a scan."""
    tenants = []
    for i in range(10_000):
        tenants.append(
            {
                "id": f"t-{i:05d}",
                "name": f"Tenant {i}",
                "registered": "2026-01-01",
                "country": "MY",
                "kyc": "basic",
                "payment": "card",
                "networks": [
                    {
                        "cidr": f"10.{i // 256}.{i % 256}.0/24",
                        "from": "2026-01-01",
                        "until": "2026-07-01",
                    },
                    {"cidr": f"10.{i // 256}.{i % 256}.128/25", "from": "2026-07-01"},
                ],
                "vnis": [{"vni": 1000 + i, "from": "2026-01-01"}],
                "buckets": [f"t{i:05d}-*"],
            }
        )
    data = {**minimal(), "tenants": tenants}
    inventory = load_inventory(write_json(tmp_path, data))
    at = utc(2026, 8, 1)
    hits = sum(
        inventory.tenant_for_address(f"10.{i // 256 % 40}.{i % 256}.200", at) is not None
        for i in range(100_000)
    )
    assert hits == 9 * 10_000 + 7_840  # second octets 0..39 cycle over 10,240 /24s; 10,000 held
    assert inventory.tenant_for_address("10.39.15.1", at) is None  # /24 expired, /25 elsewhere
    assert inventory.tenant_for_bucket("t09999-x", at) == "t-09999"
    assert inventory.tenant_for_vni(10_999, at) == "t-09999"


def test_loading_pauses_the_garbage_collector_and_restores_its_state(tmp_path: Path) -> None:
    """The collector is off while an inventory is read and built, and comes back as it was,
    also when the file is refused."""
    import gc

    seen: list[bool] = []

    def watch(phase: str, info: dict[str, int]) -> None:
        seen.append(phase == "start")

    bad = tmp_path / "inventory.yaml"
    bad.write_text("site: {name: x}\ntenants: [{id: 1, colour: red}]\n", encoding="utf-8")
    gc.callbacks.append(watch)
    try:
        for enabled in (True, False):
            (gc.enable if enabled else gc.disable)()
            seen.clear()
            assert len(load_inventory(SAMPLE).tenants) > 0
            with pytest.raises(ConfigError):
                load_inventory(bad)
            assert gc.isenabled() is enabled
            assert seen == []  # no collection ran inside, though thousands of objects were made
    finally:
        gc.callbacks.remove(watch)
        gc.enable()


def test_timelines_of_one_and_of_several_holders() -> None:
    net = IPv4Network("10.1.0.0/16")
    spans = {
        "one": [Span(5.0, float("inf"), "t-a", ("tenants", 0, "vnis", 0), 7)],
        "two": [Span(10.0, 20.0, "t-c", ("tenants", 2, "networks", 0), net),
                Span(0.0, 10.0, "t-b", ("tenants", 1, "networks", 0), net)],
        "clash": [Span(0.0, 10.0, "t-d", ("tenants", 3, "vnis", 0), 9),
                  Span(5.0, 15.0, "t-e", ("tenants", 4, "vnis", 0), 9)],
    }
    tables, conflicts = build_timelines(spans)
    assert tables == {
        "one": Timeline((5.0,), (float("inf"),), ("t-a",)),
        "two": Timeline((0.0, 10.0), (10.0, 20.0), ("t-b", "t-c")),
        "clash": Timeline((0.0, 5.0), (10.0, 15.0), ("t-d", "t-e")),
    }
    assert conflicts == [Conflict("9", ("tenants", 3, "vnis", 0), ("tenants", 4, "vnis", 0))]
    assert tables["one"].owner_at(4.9) is None
    assert tables["one"].owner_at(5.0) == "t-a"
