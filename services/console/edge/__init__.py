"""The console's adapters: the web app (Starlette routes and Jinja2 templates) and its upstream clients — the
registry over gRPC, recent Kafka records through mlops.bus, Prometheus's and Jaeger's HTTP APIs."""

from services.console.edge.app import HEALTH_QUERIES, Console, build_app
from services.console.edge.upstreams import Jaeger, Prometheus, RecentRecords, RegistryGateway

__all__ = ["HEALTH_QUERIES", "Console", "Jaeger", "Prometheus", "RecentRecords", "RegistryGateway", "build_app"]
