"""Tooling of the platform, apart from its runtime: the `mlops` command line, the demo, the local stack (Kafka +
Redis), process supervision, synthetic data, trace drawing and the registry client. The services and the container
image never import it."""

__all__: list[str] = []
