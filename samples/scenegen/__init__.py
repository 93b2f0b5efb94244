"""Builders of the sample scenario that ``samples/generate.py`` writes."""
