"""Transports for formatted alerts, and the spool that makes delivery at least once.

Alerts are formatted before they get here (:mod:`egress.formats`): a sink only moves
``(event_id, payload)`` pairs. The flow is::

    Spool.enqueue(alerts) -> Delivery(spool, sink, transport).drain() -> Transport.send(batch)

Modules: :mod:`~egress.sinks.alert` (the record and the transport protocol),
:mod:`~egress.sinks.spool` (SQLite, durable), :mod:`~egress.sinks.delivery` (batches,
backoff, dead letters), :mod:`~egress.sinks.file`, :mod:`~egress.sinks.stdout`,
:mod:`~egress.sinks.syslog`, :mod:`~egress.sinks.hec` and :mod:`~egress.sinks.registry`
(sink URLs).
"""
