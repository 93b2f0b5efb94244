"""DER encodings of X.509 names and certificates, built by hand for tests.

Shared by the tests of :mod:`egress.sources.x509_names` (subject decoding) and of
:mod:`egress.sources.deep` (certificates sent in a crafted TLS handshake).
"""

from __future__ import annotations

from collections.abc import Sequence


def der(tag: int, content: bytes) -> bytes:
    """One DER TLV: ``tag``, definite length (short or long form), ``content``."""
    n = len(content)
    if n < 0x80:
        return bytes([tag, n]) + content
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + content


def oid(dotted: str) -> bytes:
    """DER OBJECT IDENTIFIER of a dotted OID such as ``"2.5.4.3"``."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray([40 * arcs[0] + arcs[1]])
    for arc in arcs[2:]:
        chunk = [arc & 0x7F]
        rest = arc >> 7
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        body += bytes(reversed(chunk))
    return der(0x06, bytes(body))


def name(*rdns: Sequence[tuple[str, int, str]]) -> bytes:
    """DER Name from RDNs, each a list of (OID, string tag, value)."""
    return der(0x30, b"".join(
        der(0x31, b"".join(der(0x30, oid(o) + der(tag, v.encode())) for o, tag, v in rdn))
        for rdn in rdns
    ))


UTF8, PRINTABLE = 0x0C, 0x13
"""DER tags of UTF8String and PrintableString, for :func:`name`."""


def certificate(subject: bytes, issuer: bytes) -> bytes:
    """A structurally valid X.509 v3 certificate; key and signature are filler bytes."""
    sha256_rsa = der(0x30, oid("1.2.840.113549.1.1.11") + der(0x05, b""))
    rsa_key = der(0x30, der(0x02, b"\x00" + b"\xc3" * 128) + der(0x02, b"\x01\x00\x01"))
    spki = der(0x30, der(0x30, oid("1.2.840.113549.1.1.1") + der(0x05, b""))
               + der(0x03, b"\x00" + rsa_key))
    validity = der(0x30, der(0x17, b"240101000000Z") + der(0x17, b"340101000000Z"))
    tbs = der(0x30, der(0xA0, der(0x02, b"\x02")) + der(0x02, b"\x10\x42") + sha256_rsa
              + issuer + validity + subject + spki)
    return der(0x30, tbs + sha256_rsa + der(0x03, b"\x00" + b"\x5a" * 128))
