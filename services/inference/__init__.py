"""Inference: the Open Inference Protocol (KServe v2) over gRPC in front of onnxruntime, with adaptive batching,
an online-feature join by entity id, hot swap on `model.promoted` and a columnar `PredictionBatch` per served
request."""
