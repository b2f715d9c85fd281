"""Shared code of the streaming MLOps platform: contracts, the Kafka bus, topics, settings, telemetry, errors and
the online and offline feature stores."""

__all__ = ["__version__"]

__version__ = "0.1.0"
