"""Tokens: stored hashed, matched in constant time, revocable, shared through the file."""

from __future__ import annotations

import json
import os

import pytest

from producer_api.auth import TokenStore, hash_token, role_allows


def test_only_the_hash_of_a_token_is_written(tmp_path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    entry, secret = store.create("ci", "operator")
    text = (tmp_path / "tokens.json").read_text()
    assert secret not in text
    assert json.loads(text)["tokens"][0]["sha256"] == hash_token(secret)
    assert oct(os.stat(tmp_path / "tokens.json").st_mode & 0o777) == "0o600"
    assert store.authenticate(secret) == entry


def test_unknown_and_revoked_tokens_do_not_authenticate(tmp_path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    entry, secret = store.create("ci", "viewer")
    assert store.authenticate(secret + "x") is None
    assert store.revoke(entry.id)
    assert store.authenticate(secret) is None
    assert not store.revoke(entry.id)


def test_a_token_created_by_another_process_is_seen(tmp_path) -> None:
    api_side = TokenStore(tmp_path / "tokens.json")
    _, secret = TokenStore(tmp_path / "tokens.json").create("late", "admin")
    api_side._checked = 0.0  # skip the 1 s re-read throttle instead of sleeping
    assert api_side.authenticate(secret).name == "late"


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert role_allows("admin", "operator")
    assert role_allows("operator", "viewer")
    assert not role_allows("viewer", "operator")
    assert not role_allows("nobody", "viewer")


def test_unknown_role_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        TokenStore(tmp_path / "tokens.json").create("x", "root")
