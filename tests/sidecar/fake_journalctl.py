"""A stand-in for ``journalctl -f -k -o json`` in tests: prints the JSON lines of the file
named by ``FAKE_JOURNAL`` that come after ``--after-cursor=C`` (all lines without it);
with ``-f`` it then prints the lines appended to that file until it is stopped. Each run
appends its arguments (a JSON list) to the file named by ``FAKE_JOURNAL_ARGV``."""

from __future__ import annotations

import json
import os
import sys
import time

args = sys.argv[1:]
with open(os.environ["FAKE_JOURNAL_ARGV"], "a", encoding="utf-8") as log:
    log.write(json.dumps(args) + "\n")
cursor = next((a.partition("=")[2] for a in args if a.startswith("--after-cursor=")), None)
follow = "-f" in args
printed = 0
skipping = cursor is not None
while True:
    with open(os.environ["FAKE_JOURNAL"], "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    complete = [line for line in lines if line.endswith(b"\n")]
    for line in complete[printed:]:
        if skipping:
            skipping = json.loads(line)["__CURSOR"] != cursor
            continue
        sys.stdout.buffer.write(line)
    sys.stdout.buffer.flush()
    printed = len(complete)
    if not follow:
        break
    time.sleep(0.02)
