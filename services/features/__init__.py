"""features: a faust app folding events into windowed tables per entity → the online view + features.log."""
