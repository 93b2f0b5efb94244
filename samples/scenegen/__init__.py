"""Builders of the sample scenario that ``samples/generate_scenario.py`` writes."""
