"""The sidecar: continuous detection next to ingest gateways and Zeek sensors.

:mod:`~egress.sidecar.config` (the YAML config), :mod:`~egress.sidecar.follow` (file
followers with durable checkpoints), :mod:`~egress.sidecar.state` (the state directory:
transfer segments, checkpoint, alerted ids), :mod:`~egress.sidecar.service` (the tick loop),
:mod:`~egress.sidecar.http` (``/healthz`` and ``/metrics``), and the inputs it feeds itself
(:mod:`~egress.sidecar.inputs`): :mod:`~egress.sidecar.webhook` (MinIO's audit webhook),
:mod:`~egress.sidecar.journal` (``journalctl -f``), :mod:`~egress.sidecar.packets` (a
``tcpdump -w -`` pipe), run by :mod:`~egress.sidecar.command`. See ``README.md`` here.
"""
