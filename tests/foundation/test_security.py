"""mlops.security on plain values: token entries parse (or fail naming the entry), roles decide, admin includes
predict, signatures bind model, version and sha256. (Real clients against real servers: tests/inference and
tests/registry, test_*_auth.py.)"""

from __future__ import annotations

import pytest
from mlops.security import (
    BadTokenEntry,
    PermissionDenied,
    SecuritySettings,
    TokenTable,
    Unauthenticated,
    promotion_signature,
    promotion_verified,
)
from pydantic import SecretStr


def test_entries_parse_from_the_setting_and_the_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "tokens"
    file.write_text("# comment\nci=predict:t2\n")
    table = SecuritySettings(tokens=SecretStr("ops=admin:t1"), tokens_file=file).table()
    assert table.authorize("Bearer t1", "admin", "/x/Promote").identity == "ops"
    assert table.authorize("bearer t2", "predict", "/x/Infer").identity == "ci"
    assert table.authorize("Bearer t1", "predict", "/x/Infer").identity == "ops"  # admin includes predict
    with pytest.raises(PermissionDenied, match="'ci' lacks role 'admin' needed for /x/Promote"):
        table.authorize("Bearer t2", "admin", "/x/Promote")
    for header in (None, "", "t1", "Basic t1", "Bearer", "Bearer nope"):
        with pytest.raises(Unauthenticated):
            table.authorize(header, "predict", "/x/Infer")
    assert not SecuritySettings().table().enabled  # nothing configured: authentication off


@pytest.mark.parametrize("text, why", [("ops:admin", "missing"), ("ops=root:t", "roles must be among"),
                                       ("=admin:t", "missing"), ("ops=admin:", "missing")])
def test_a_bad_entry_is_named_without_its_token(text: str, why: str) -> None:
    with pytest.raises(BadTokenEntry, match=why) as exc:
        TokenTable.parse(f"fine=predict:ok, {text}")
    assert "entry 2" in str(exc.value) and ":t" not in str(exc.value).split("(expected")[0]


def test_the_settings_never_show_the_tokens() -> None:
    settings = SecuritySettings(tokens=SecretStr("ops=admin:very-secret"), promotion_key=SecretStr("k3y-secret"))
    assert "very-secret" not in repr(settings) and "k3y-secret" not in str(settings.model_dump())


def test_a_signature_binds_model_version_and_artifact() -> None:
    key, sha = SecretStr("k"), "ab" * 32
    signature = promotion_signature(key, "sea", "3", sha)
    assert promotion_verified(key, "sea", "3", sha, signature)
    for other in (("sea", "4", sha), ("sea2", "3", sha), ("sea", "3", "cd" * 32)):
        assert not promotion_verified(key, *other, signature)
    assert not promotion_verified(SecretStr("other"), "sea", "3", sha, signature)
    assert not promotion_verified(key, "sea", "3", sha, "")
