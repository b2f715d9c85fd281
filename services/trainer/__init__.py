"""The trainer: retrain requests → a reproducible ONNX model + a ModelCandidate on model.candidates."""
