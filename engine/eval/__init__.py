"""Interaction-quality evaluation: procedural scenarios, streaming metrics, and the suite runner."""
