"""X.509 distinguished names: a certificate's subject, from DER to an RFC 4514 string.

tshark hands :mod:`egress.sources.deep` a certificate's subject Name as the hex of its
DER encoding (``x509af.subject``, raw). :func:`certificate_subject` decodes just that
structure (a SEQUENCE of RDN SETs of (OID, string) pairs) and writes it the way
RFC 4514 does: last RDN first, multi-valued RDNs joined with ``+``, well-known
attribute types by their short names (``CN``, ``O``, ``C``, ...), special characters
escaped. A value whose type has no short name, or whose string type or bytes cannot
be decoded, is written as ``#`` and the hex of its BER encoding, as RFC 4514 requires.

Nothing here needs tshark: the decoder reads bytes only, and never raises on bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)

_ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU",
    "2.5.4.97": "organizationIdentifier", "1.2.840.113549.1.9.1": "emailAddress",
    "0.9.2342.19200300.100.1.1": "UID", "0.9.2342.19200300.100.1.25": "DC",
}
_STRING_CODECS = {
    0x0C: "utf-8", 0x12: "ascii", 0x13: "ascii", 0x14: "latin-1", 0x16: "ascii",
    0x1A: "ascii", 0x1C: "utf-32-be", 0x1E: "utf-16-be",
}


def certificate_subject(hex_der: str) -> str | None:
    """Render a certificate's subject Name (DER, as hex) as an RFC 4514 string.

    An empty Name gives ``""``. Returns ``None`` (and logs at debug level) when the
    bytes are not a well-formed Name.
    """
    try:
        der = bytes.fromhex(hex_der)
        (tag, name), = _der_items(der)
        if tag != 0x30:
            raise ValueError("Name is not a SEQUENCE")
        rdns = []
        for rdn_tag, rdn in _der_items(name):
            if rdn_tag != 0x31:
                raise ValueError("RDN is not a SET")
            rdns.append("+".join(_attribute(atv_tag, atv) for atv_tag, atv in _der_items(rdn)))
    except ValueError as exc:
        log.debug("unreadable certificate subject %s: %s", hex_der[:64], exc)
        return None
    return ",".join(reversed(rdns))  # RFC 4514 writes the last RDN first


def _attribute(tag: int, atv: bytes) -> str:
    if tag != 0x30:
        raise ValueError("AttributeTypeAndValue is not a SEQUENCE")
    items = list(_der_items(atv, keep_header=True))
    if len(items) != 2 or items[0][0] != 0x06:
        raise ValueError("AttributeTypeAndValue is not (OID, value)")
    oid = _oid(items[0][1][_header_length(items[0][1]):])
    value_tag, value_tlv = items[1]
    codec = _STRING_CODECS.get(value_tag)
    name = _ATTRIBUTE_NAMES.get(oid)
    if codec is not None and name is not None:
        try:
            return f"{name}={_escape(value_tlv[_header_length(value_tlv):].decode(codec))}"
        except UnicodeDecodeError:
            pass
    return f"{name or oid}=#{value_tlv.hex()}"  # RFC 4514: hex of the BER encoding


def _der_items(data: bytes, *, keep_header: bool = False) -> Iterator[tuple[int, bytes]]:
    """Split DER ``data`` into (tag, contents) items; with ``keep_header``, whole TLVs."""
    i = 0
    while i < len(data):
        start = i
        tag = data[i]
        if tag & 0x1F == 0x1F:
            raise ValueError("multi-byte tags are not used in Names")
        if i + 1 >= len(data):
            raise ValueError("truncated length")
        first = data[i + 1]
        i += 2
        if first < 0x80:
            length = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or i + count > len(data):
                raise ValueError("bad length")
            length = int.from_bytes(data[i:i + count], "big")
            i += count
        if i + length > len(data):
            raise ValueError("truncated item")
        yield tag, data[start if keep_header else i:i + length]
        i += length


def _header_length(tlv: bytes) -> int:
    return 2 if tlv[1] < 0x80 else 2 + (tlv[1] & 0x7F)


def _oid(body: bytes) -> str:
    if not body or body[-1] & 0x80:
        raise ValueError("bad OBJECT IDENTIFIER")
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def _escape(value: str) -> str:
    """Escape an attribute value the way RFC 4514 section 2.4 requires."""
    last = len(value) - 1
    out = []
    for i, c in enumerate(value):
        if c == "\0":
            out.append("\\00")
        elif c in '"+,;<>\\' or (c == " " and i in (0, last)) or (c == "#" and i == 0):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)
