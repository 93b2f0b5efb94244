"""Input readers: one module per input kind, each producing normalized records."""
