"""The tenant inventory at the boundary: files in, a validated pydantic model out.

Three forms carry the same content:

* one YAML file (``.yaml``/``.yml``), with line numbers in errors;
* one JSON file (``.json``), with field paths in errors;
* a directory of CSV tables for large estates (``tenants.csv`` marks it):

  ``site.csv``           ``field,value``: one row per ``name``, ``country``,
                         ``network``, ``ingest_station`` and ``concern_country``
  ``tenants.csv``        ``id,name,registered,country,parent_country,kyc,payment,
                         predecessor,offboarded,payment_ref,contacts``
  ``networks.csv``       ``tenant_id,cidr,vni,from,until``: one assignment a row,
                         with exactly one of ``cidr`` or ``vni``
  ``allocations.csv``    ``tenant_id,cluster,gpu_model,gpus,from,until``
  ``buckets.csv``        ``tenant_id,pattern``
  ``media_imports.csv``  ``tenant_id,job,received,serials,target_buckets,copy_logs``

  Empty cells are unset; list cells (``contacts``, ``serials``, ...) separate
  items with ``;``. Only ``tenants.csv`` and ``site.csv`` are required.

Times are ISO 8601 with a UTC offset; a bare date means 00:00 UTC. Every error is
a :class:`~egress.errors.ConfigError` naming the file (and line, where known) and
the field path, e.g. ``inventory.yaml:14: tenants[3].networks[0].cidr: ...``.
Nothing in this module is used after loading: :mod:`egress.inventory` turns the
model into frozen records.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from egress.errors import ConfigError
from egress.yaml_lines import FieldPath, YamlSyntaxError, line_of, parse_document

CSV_MARKER = "tenants.csv"
MAX_ERRORS_SHOWN = 10
_LIST_SEPARATOR = ";"

Locator = Callable[[FieldPath], str]
"""Maps a field path to where it stands in the input: ``file``, ``file:line``."""
Parsed = tuple["InventoryModel", Locator]
"""A validated inventory and the locator of its source, for later cross-record checks."""


# -- field types --------------------------------------------------------------------------


def _instant(value: object) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                return datetime(day.year, day.month, day.day, tzinfo=UTC)
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date or time: {value!r}") from None
    else:
        raise ValueError(f"not an ISO 8601 date or time: {value!r}")
    if moment.tzinfo is None:
        raise ValueError(
            f"time {value!s} has no UTC offset (add 'Z' or '+hh:mm'; a bare date means 00:00 UTC)"
        )
    return moment.astimezone(UTC)


def _country(value: object) -> str:
    if value is False:  # YAML 1.1 reads a bare NO as false; our loader does not, JSON may
        raise ValueError("got a boolean; write the country code in quotes")
    if not (isinstance(value, str) and len(value) == 2 and value.isascii() and value.isupper()):
        raise ValueError(f"not an ISO 3166 alpha-2 country code (two capitals): {value!r}")
    return value


def _network(value: object) -> IPv4Network | IPv6Network:
    if not isinstance(value, str):
        raise ValueError(f"not a valid network: {value!r} (write it as a quoted CIDR string)")
    try:
        return ip_network(value.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(f"not a valid network: {exc}") from None


def _address(value: object) -> IPv4Address | IPv6Address:
    if not isinstance(value, str):
        raise ValueError(f"not a valid address: {value!r}")
    try:
        return ip_address(value.strip())
    except ValueError as exc:
        raise ValueError(f"not a valid address: {exc}") from None


Instant = Annotated[datetime, PlainValidator(_instant)]
Country = Annotated[str, PlainValidator(_country)]
Network = Annotated[IPv4Network | IPv6Network, PlainValidator(_network)]
Address = Annotated[IPv4Address | IPv6Address, PlainValidator(_address)]
Name = Annotated[str, Field(min_length=1)]
Kyc = Literal["none", "basic", "verified", "enhanced"]
Payment = Literal["card", "invoice", "wire", "crypto", "other"]


def _not_before(field: str) -> Callable[[datetime | None, ValidationInfo], datetime | None]:
    def check(value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get(field)
        if value is not None and isinstance(start, datetime) and value < start:
            raise ValueError(f"{value.isoformat()} is before {start.isoformat()}")
        return value

    return check


# -- the schema ---------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=False)


class SiteModel(_Strict):
    name: Name
    country: Country
    networks: list[Network]
    ingest_stations: list[Address] = Field(default_factory=list)


class NetworkModel(_Strict):
    cidr: Network
    from_: Instant = Field(alias="from")
    until: Instant | None = None
    _until = field_validator("until")(_not_before("from_"))


class VniModel(_Strict):
    vni: int = Field(ge=0, le=0xFFFFFF)
    from_: Instant = Field(alias="from")
    until: Instant | None = None
    _until = field_validator("until")(_not_before("from_"))


class AllocationModel(_Strict):
    cluster: Name
    gpu_model: Name
    gpus: int = Field(gt=0)
    from_: Instant = Field(alias="from")
    until: Instant | None = None
    _until = field_validator("until")(_not_before("from_"))


class MediaImportModel(_Strict):
    job: Name
    received: Instant
    serials: list[Name]
    target_buckets: list[Name] = Field(default_factory=list)
    copy_logs: list[Name] = Field(default_factory=list)


class IdentifiersModel(_Strict):
    payment_ref: Name | None = None
    contacts: list[Name] = Field(default_factory=list)


class TenantModel(_Strict):
    id: Name
    name: Name
    registered: Instant
    country: Country
    parent_country: Country | None = None
    kyc: Kyc
    payment: Payment
    predecessor: Name | None = None
    identifiers: IdentifiersModel = Field(default_factory=IdentifiersModel)
    offboarded: Instant | None = None
    networks: list[NetworkModel] = Field(default_factory=list)
    vnis: list[VniModel] = Field(default_factory=list)
    buckets: list[Name] = Field(default_factory=list)
    allocations: list[AllocationModel] = Field(default_factory=list)
    media_imports: list[MediaImportModel] = Field(default_factory=list)
    _offboarded = field_validator("offboarded")(_not_before("registered"))


class InventoryModel(_Strict):
    site: SiteModel
    concern_countries: list[Country]
    tenants: list[TenantModel]


# -- errors -------------------------------------------------------------------------------


def format_path(path: FieldPath) -> str:
    """Render ``("tenants", 3, "cidr")`` as ``tenants[3].cidr``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def config_error(problems: Sequence[tuple[FieldPath, str]], locate: Locator) -> ConfigError:
    """One ConfigError listing the first problems as ``where: field.path: message`` lines."""
    lines = []
    for path, message in problems[:MAX_ERRORS_SHOWN]:
        field = format_path(path)
        lines.append(
            f"{locate(path)}: {field}: {message}" if field else f"{locate(path)}: {message}"
        )
    if len(problems) > MAX_ERRORS_SHOWN:
        lines.append(f"... and {len(problems) - MAX_ERRORS_SHOWN} more problems")
    return ConfigError("\n".join(lines))


def _problems(exc: ValidationError) -> list[tuple[FieldPath, str]]:
    problems: list[tuple[FieldPath, str]] = []
    for error in exc.errors(include_url=False):
        path: FieldPath = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "value_error":
            message = str(error["ctx"]["error"])
        else:
            message = error["msg"]
        problems.append((path, message))
    return problems


def validate(data: object, locate: Locator) -> Parsed:
    """Validate parsed content; raise ConfigError naming each problem's place."""
    try:
        return InventoryModel.model_validate(data), locate
    except ValidationError as exc:
        raise config_error(_problems(exc), locate) from exc


# -- YAML and JSON ------------------------------------------------------------------------


def _yaml_locator(name: str, root: yaml.Node) -> Locator:
    def locate(path: FieldPath) -> str:
        return f"{name}:{line_of(root, path)}"

    return locate


def read_yaml(path: Path) -> Parsed:
    """Parse and validate a YAML inventory; errors carry line numbers."""
    name = path.name
    try:
        data, root = parse_document(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read inventory: {exc.strerror}") from exc
    except YamlSyntaxError as exc:
        where = f"{name}:{exc.line}" if exc.line is not None else name
        raise ConfigError(f"{where}: not valid YAML: {exc.problem}") from exc
    if root is None:
        raise ConfigError(f"{name}: the inventory is empty")
    return validate(data, _yaml_locator(name, root))


def read_json(path: Path) -> Parsed:
    """Parse and validate a JSON inventory; errors carry field paths."""
    name = path.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read inventory: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name}:{exc.lineno}: not valid JSON: {exc.msg}") from exc
    return validate(data, lambda _path: name)


# -- CSV tables ---------------------------------------------------------------------------

_TENANT_COLUMNS = {
    "id",
    "name",
    "registered",
    "country",
    "parent_country",
    "kyc",
    "payment",
    "predecessor",
    "offboarded",
    "payment_ref",
    "contacts",
}
_CHILD_TABLES: dict[str, set[str]] = {
    "networks.csv": {"tenant_id", "cidr", "vni", "from", "until"},
    "allocations.csv": {"tenant_id", "cluster", "gpu_model", "gpus", "from", "until"},
    "buckets.csv": {"tenant_id", "pattern"},
    "media_imports.csv": {
        "tenant_id",
        "job",
        "received",
        "serials",
        "target_buckets",
        "copy_logs",
    },
}
_LIST_COLUMNS = {"contacts", "serials", "target_buckets", "copy_logs"}
_SITE_FIELDS = {
    "name": ("site", "name"),
    "country": ("site", "country"),
    "network": ("site", "networks"),
    "ingest_station": ("site", "ingest_stations"),
    "concern_country": ("concern_countries",),
}


def _rows(path: Path, columns: set[str]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV table as (line, non-empty cells); unknown columns are errors."""
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            unknown = [column for column in header if column not in columns]
            if unknown:
                raise ConfigError(
                    f"{path.name}:1: unknown column {unknown[0]!r} "
                    f"(known: {', '.join(sorted(columns))})"
                )
            rows = []
            for row in reader:
                cells = {k: v.strip() for k, v in row.items() if k is not None and v and v.strip()}
                if None in row:
                    raise ConfigError(f"{path.name}:{reader.line_num}: more cells than columns")
                if cells:
                    rows.append((reader.line_num, cells))
            return rows
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read inventory table: {exc.strerror}") from exc
    except csv.Error as exc:
        raise ConfigError(f"{path.name}: not valid CSV: {exc}") from exc


def _split(cell: str) -> list[str]:
    return [item.strip() for item in cell.split(_LIST_SEPARATOR) if item.strip()]


def read_csv_tables(directory: Path) -> Parsed:
    """Parse and validate an inventory given as CSV tables in ``directory``."""
    places: dict[FieldPath, str] = {}
    data: dict[str, Any] = {"site": {}, "concern_countries": [], "tenants": []}
    site: dict[str, Any] = data["site"]

    site_path = directory / "site.csv"
    if not site_path.is_file():
        raise ConfigError(f"{directory}: site.csv is missing beside {CSV_MARKER}")
    places[("site",)] = "site.csv:1"
    for line, cells in _rows(site_path, {"field", "value"}):
        field, value = cells.get("field", ""), cells.get("value", "")
        if field not in _SITE_FIELDS:
            raise ConfigError(f"site.csv:{line}: field: unknown site field {field!r}")
        target = _SITE_FIELDS[field]
        if target[0] == "concern_countries":
            places[("concern_countries", len(data["concern_countries"]))] = f"site.csv:{line}"
            data["concern_countries"].append(value)
        elif field in ("network", "ingest_station"):
            items = site.setdefault(target[1], [])
            places[(*target, len(items))] = f"site.csv:{line}"
            items.append(value)
        else:
            places[target] = f"site.csv:{line}"
            site[target[1]] = value

    index_of: dict[str, int] = {}
    tenants: list[dict[str, Any]] = data["tenants"]
    for line, cells in _rows(directory / CSV_MARKER, _TENANT_COLUMNS):
        tenant: dict[str, Any] = {}
        identifiers: dict[str, Any] = {}
        for column, value in cells.items():
            if column == "payment_ref":
                identifiers[column] = value
            elif column == "contacts":
                identifiers[column] = _split(value)
            else:
                tenant[column] = value
        if identifiers:
            tenant["identifiers"] = identifiers
        places[("tenants", len(tenants))] = f"{CSV_MARKER}:{line}"
        index_of.setdefault(cells.get("id", ""), len(tenants))
        tenants.append(tenant)

    for table, columns in _CHILD_TABLES.items():
        path = directory / table
        if not path.is_file():
            continue
        for line, cells in _rows(path, columns):
            owner = cells.pop("tenant_id", None)
            if owner not in index_of:
                what = "tenant_id is missing" if owner is None else f"unknown tenant {owner!r}"
                raise ConfigError(f"{table}:{line}: tenant_id: {what}")
            position = index_of[owner]
            tenant = tenants[position]
            item: str | dict[str, str | list[str]]
            if table == "buckets.csv":
                key = "buckets"
                if "pattern" not in cells:
                    raise ConfigError(f"{table}:{line}: pattern: Field required")
                item = cells["pattern"]
            else:
                key = table.removesuffix(".csv")
                if table == "networks.csv":
                    if ("cidr" in cells) == ("vni" in cells):
                        raise ConfigError(f"{table}:{line}: give exactly one of cidr or vni")
                    key = "networks" if "cidr" in cells else "vnis"
                item = {k: _split(v) if k in _LIST_COLUMNS else v for k, v in cells.items()}
            items = tenant.setdefault(key, [])
            places[("tenants", position, key, len(items))] = f"{table}:{line}"
            items.append(item)

    def locate(path: FieldPath) -> str:
        for end in range(len(path), 0, -1):
            if path[:end] in places:
                return places[path[:end]]
        return CSV_MARKER

    return validate(data, locate)
