"""Shared code of the streaming MLOps platform: contracts, the Kafka bus, topics, telemetry, settings, the CLI."""

__all__ = ["__version__"]

__version__ = "0.1.0"
