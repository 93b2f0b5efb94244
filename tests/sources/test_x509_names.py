"""Tests for X.509 subject decoding: RFC 4514 strings from DER built here by hand."""

from __future__ import annotations

from egress.sources.x509_names import certificate_subject
from tests.sources.x509_der import PRINTABLE, UTF8, name


def test_certificate_subject_follows_rfc_4514() -> None:
    subject = name(
        [("2.5.4.6", PRINTABLE, "DE")],
        [("2.5.4.10", UTF8, " Lab; \"GPU\" <1>"), ("2.5.4.11", UTF8, "#ops+ml ")],
        [("1.3.6.1.4.1.99999.1", UTF8, "x")],
        [("2.5.4.3", UTF8, "Zürich")],
    )
    assert certificate_subject(subject.hex()) == (
        "CN=Zürich,1.3.6.1.4.1.99999.1=#0c0178,"
        'O=\\ Lab\\; \\"GPU\\" \\<1\\>+OU=\\#ops\\+ml\\ ,C=DE'
    )
    assert certificate_subject(subject[:-3].hex()) is None
    assert certificate_subject("3000") == ""
