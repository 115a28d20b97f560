"""Training the interaction model: the per-second dataset, weighted SFT, export (docs/training.md)."""
