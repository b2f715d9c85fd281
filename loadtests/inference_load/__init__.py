"""The pieces of loadtests/bench_inference.py: `client` (the load generators), `servers` (the servers compared and
their metrics), `phases` (raw onnxruntime, the monitor's drain rate, the hot swap). The benchmark script itself
runs the phases and prints the table."""
