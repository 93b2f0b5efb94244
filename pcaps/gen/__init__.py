"""The sample-capture generator behind ``pcaps/generate.py``, one concern per module.

* :mod:`gen.capture`: records, units and captures (what is written and counted);
* :mod:`gen.conversations`: IP conversations as timestamped datagrams (scapy);
* :mod:`gen.framing`: link layers and tunnels that frame the datagrams;
* :mod:`gen.scenarios_links`, :mod:`gen.scenarios_tunnels`,
  :mod:`gen.scenario_datacenter`: the captures themselves;
* :mod:`gen.writers`: pcap / pcapng / gzip bytes;
* :mod:`gen.expected`: the expected flows (Zeek's rules), ``expected.json`` and README.

It is imported as the top-level package ``gen``: ``python pcaps/generate.py`` puts
``pcaps/`` first on ``sys.path``.
"""
