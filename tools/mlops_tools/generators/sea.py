"""The SEA example's stream: today's demo data (`mlops_tools.datagen`, river's SEA with a known concept drift),
seen through the common generator interface. The records and their bytes are datagen's, unchanged."""

from __future__ import annotations

from mlops_tools.datagen import StreamConfig, SyntheticRecord, expected_accuracy_drop, generate, measure_accuracy_drop

__all__ = ["StreamConfig", "SyntheticRecord", "expected_accuracy_drop", "generate", "measure_accuracy_drop"]
