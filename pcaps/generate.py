"""Generate the sample captures in ``pcaps/`` and the flows each one must yield.

Run ``python pcaps/generate.py [OUTDIR]`` (default: the directory of this file). It writes
one capture per supported encapsulation, ``expected.json`` (the exact flows of every
capture) and ``README.md`` (the same facts for people). The output is a pure function of
this file and the package ``pcaps/gen/``: timestamps are fixed, every random choice comes
from a ``random.Random`` seeded with a constant string, and gzip headers carry no name or
time, so two runs give byte-identical files.

Packets are crafted with scapy. Expected flows are counted from the bytes written, not by
running egress: each frame carries the *units* a Zeek-style flow table counts for it (the
IP datagram; for VXLAN/Geneve the outer datagram and the inner one; for GRE only the inner
one; for fragments the reassembled datagram, on the fragment that completes it), and
:func:`gen.expected.tally` groups the units into flows with Zeek's conn.log rules.

This file lists the captures and writes them; the modules of ``pcaps/gen/`` build them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from gen.capture import Capture
from gen.expected import manifest_entry, render_readme
from gen.scenario_datacenter import cap_datacenter
from gen.scenarios_links import (
    cap_bsd_loop,
    cap_bsd_null,
    cap_ethernet,
    cap_ethernet_be_nsec,
    cap_pcapng,
    cap_raw,
    cap_sll,
)
from gen.scenarios_tunnels import (
    cap_fragments,
    cap_geneve,
    cap_gre,
    cap_ipv4_options,
    cap_ipv6_exthdr,
    cap_mpls,
    cap_vlan,
    cap_vxlan,
)
from gen.writers import capture_bytes

CAPTURES: tuple[Callable[[], Capture], ...] = (
    cap_ethernet, cap_ethernet_be_nsec, cap_raw, lambda: cap_sll(1), lambda: cap_sll(2),
    cap_bsd_null, cap_bsd_loop, cap_vlan, cap_mpls, cap_ipv4_options, cap_ipv6_exthdr,
    cap_fragments, cap_vxlan, cap_geneve, cap_gre, cap_pcapng,
    lambda: cap_ethernet("ethernet.pcap.gz"), cap_datacenter,
)
"""Every capture, in the order of ``expected.json`` and the README."""


def generate(outdir: Path) -> list[dict[str, Any]]:
    """Write every capture, expected.json and README.md into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    entries = []
    for build in CAPTURES:
        cap = build()
        data = capture_bytes(cap)
        (outdir / cap.name).write_bytes(data)
        entries.append(manifest_entry(cap, len(data)))
    manifest = {"generator": "pcaps/generate.py", "captures": entries}
    (outdir / "expected.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (outdir / "README.md").write_text(render_readme(entries))
    return entries


def main(argv: Sequence[str]) -> int:
    """Generate into ``argv[1]`` or next to this file."""
    outdir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent
    generate(outdir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
