"""features: faust-streaming agents and windowed tables per entity → Redis online view + features.log."""
