"""egress: detect bulk data arrivals at GPU clouds and attribute them to tenants."""

from __future__ import annotations

__version__ = "0.1.0"
