"""The chaos suite's parts (loadtests/chaos.py runs them; tests/chaos runs a few at CI size): an isolated platform
(`platform`), the traffic (`traffic`), what the services wrote (`observe`), the reference for derived state
(`verify`), a latency-injecting TCP proxy (`proxy`) and the scenarios (`scenarios`, `faults`)."""
