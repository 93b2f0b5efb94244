"""The sidecar: continuous detection next to ingest gateways and Zeek sensors.

:mod:`~egress.sidecar.config` (the YAML config), :mod:`~egress.sidecar.follow` (file
followers with durable checkpoints), :mod:`~egress.sidecar.state` (the state directory:
transfer segments, checkpoint, alerted ids), :mod:`~egress.sidecar.service` (the tick loop),
:mod:`~egress.sidecar.http` (``/healthz`` and ``/metrics``). See ``README.md`` here.
"""
