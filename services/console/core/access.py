"""Who may change the champion from the console: actions are off unless enabled, and then need the configured
admin token (compared in constant time). The actor recorded in the registry's audit trail is `console:<name>`."""

from __future__ import annotations

import hmac
import re

from services.console.errors import ActionRefused

__all__ = ["authorize", "console_actor"]

_ACTOR = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def authorize(enabled: bool, configured_token: str, given_token: str) -> None:
    """Raise ActionRefused unless actions are enabled, a token is configured and `given_token` equals it."""
    if not enabled:
        raise ActionRefused("actions are disabled on this console (MLOPS_CONSOLE_ACTIONS_ENABLED=false)")
    if not configured_token:
        raise ActionRefused("no admin token is configured (MLOPS_CONSOLE_ADMIN_TOKEN)")
    if not given_token:
        raise ActionRefused("the admin token is missing (form field `token` or header X-Admin-Token)")
    if not hmac.compare_digest(given_token.encode(), configured_token.encode()):
        raise ActionRefused("the admin token is wrong")


def console_actor(name: str) -> str:
    """The audit trail's actor for an operator `name` (letters, digits, _ . @ -; at most 64)."""
    name = name.strip() or "admin"
    if not _ACTOR.fullmatch(name):
        raise ActionRefused(f"actor {name!r}: use letters, digits and _ . @ - (at most 64)")
    return f"console:{name}"
