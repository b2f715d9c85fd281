"""A signed promotion carries its time and action: a recorded one cannot be re-sent to model.promoted later as a
fresh decision (mlops.security.PromotionReplayGuard), while records signed the earlier way still verify."""

from __future__ import annotations

from mlops.security import PromotionReplayGuard, promotion_signature, promotion_verified
from pydantic import SecretStr

KEY = SecretStr("k3y")
SHA = "ab" * 32


def test_the_time_and_the_action_are_signed() -> None:
    signature = promotion_signature(KEY, "sea", "3", SHA, promoted_at_ms=1_000, action="promote")
    assert promotion_verified(KEY, "sea", "3", SHA, signature, promoted_at_ms=1_000, action="promote")
    assert not promotion_verified(KEY, "sea", "3", SHA, signature, promoted_at_ms=2_000, action="promote")
    assert not promotion_verified(KEY, "sea", "3", SHA, signature, promoted_at_ms=1_000, action="rollback")
    assert not promotion_verified(KEY, "sea", "3", SHA, signature)  # the time cannot be dropped either
    legacy = promotion_signature(KEY, "sea", "3", SHA)  # records signed before times were signed
    assert promotion_verified(KEY, "sea", "3", SHA, legacy)
    assert legacy != signature


def test_an_old_signed_promotion_replayed_later_is_refused() -> None:
    guard = PromotionReplayGuard()
    history = [("sea", "", 1_000), ("sea", "", 2_000), ("sea", "shadow", 2_500), ("sea", "", 3_000)]
    assert [guard.accept(*record) for record in history] == [True, True, True, True]
    assert not guard.accept("sea", "", 1_000)  # v1's genuine, signed record appended again
    assert not guard.accept("sea", "champion", 2_999)  # any older one
    assert guard.accept("sea", "champion", 3_000)  # the newest again (or a record of the same command): re-applied
    assert not guard.accept("sea", "canary", 2_400)  # the challenger slot has its own order
    assert guard.accept("sea", "guard", 3_100) and guard.accept("sea", "", 4_000)  # a rollback is a new record
    assert guard.accept("other", "", 10)  # per model
    assert guard.newest("sea") == 4_000 and guard.newest("sea", "shadow") == 3_100
