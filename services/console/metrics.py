"""Prometheus metrics of the console."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["ACTIONS", "PAGES", "UPSTREAM_FAILURES"]

PAGES = Counter("mlops_console_pages_total", "Pages served, by page and HTTP status.", ["page", "status"])
UPSTREAM_FAILURES = Counter("mlops_console_upstream_failures_total", "Upstream calls that failed, by upstream.",
                            ["upstream"])
ACTIONS = Counter("mlops_console_actions_total", "Promote/rollback requests, by action and outcome.",
                  ["action", "outcome"])
