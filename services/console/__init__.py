"""The operators' console: a read-mostly web UI over the registry (gRPC), recent Kafka records (dead letters,
retrain requests, predictions), Prometheus's HTTP API (health, rates, drift, alerts) and Jaeger's (traces)."""
