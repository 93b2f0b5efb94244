"""Pure renderers from records to text formats (no I/O beyond the stream given)."""
