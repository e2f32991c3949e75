"""Tokens: stored hashed in a SQLite file, changed atomically by many processes at once,
revocable everywhere at once, and imported from the old JSON file."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from producer_api.auth import TokenStore, hash_token, role_allows

# The `taskpulse` console script of this environment (the CLI is a contract name).
CLI = str(Path(sys.executable).with_name("taskpulse"))


def cli(*argv: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKPULSE_")}
    return subprocess.Popen([CLI, *argv], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def old_json_file(path: Path, count: int) -> dict[str, str]:
    """A tokens file as the JSON store wrote it; returns token id -> secret."""
    secrets = {f"{i:08x}": f"tp_legacy-secret-{i}" for i in range(count)}
    entries = [
        {"id": tid, "name": f"old-{tid}", "role": "operator", "sha256": hash_token(secret),
         "created": 1_700_000_000.0 + i}
        for i, (tid, secret) in enumerate(secrets.items())
    ]  # fmt: skip
    path.write_text(json.dumps({"tokens": entries}, indent=2) + "\n")
    return secrets


def test_only_the_hash_of_a_token_is_stored_in_a_private_file(tmp_path) -> None:
    store = TokenStore(tmp_path / "tokens.db")
    entry, secret = store.create("ci", "operator")
    assert store.authenticate(secret) == entry
    for written in tmp_path.iterdir():  # the database, its WAL and shared-memory files
        assert secret.encode() not in written.read_bytes(), written.name
        assert oct(written.stat().st_mode & 0o777) == "0o600", written.name
    with sqlite3.connect(tmp_path / "tokens.db") as conn:
        assert conn.execute("SELECT sha256 FROM tokens").fetchall() == [(hash_token(secret),)]


def test_unknown_and_revoked_tokens_do_not_authenticate(tmp_path) -> None:
    store = TokenStore(tmp_path / "tokens.db")
    entry, secret = store.create("ci", "viewer")
    assert store.authenticate(secret + "x") is None
    assert store.revoke(entry.id)
    assert store.authenticate(secret) is None
    assert not store.revoke(entry.id)


def test_get_finds_a_token_by_id_until_it_is_revoked(tmp_path) -> None:
    store = TokenStore(tmp_path / "tokens.db")
    entry, _ = store.create("console", "admin")
    assert store.get(entry.id) == entry
    store.revoke(entry.id)
    assert store.get(entry.id) is None


def test_tokens_created_by_parallel_cli_processes_are_all_stored_and_all_work(tmp_path) -> None:
    path = tmp_path / "tokens.db"
    runs = [cli("tokens", "create", "--role", "operator", "--name", f"ci-{i}", "--file", str(path),
                "--json") for i in range(12)]  # fmt: skip
    created = []
    for run in runs:
        out, err = run.communicate(timeout=60)
        assert run.returncode == 0, err
        created.append(json.loads(out))

    store = TokenStore(path)
    assert sorted(e.name for e in store.list()) == sorted(f"ci-{i}" for i in range(12))
    for token in created:
        assert store.authenticate(token["token"]).id == token["id"]


def test_a_revocation_by_another_process_applies_at_the_next_lookup(tmp_path) -> None:
    api_side = TokenStore(tmp_path / "tokens.db")
    entry, secret = api_side.create("leaving", "admin")
    assert api_side.authenticate(secret) == entry  # its connection is open and has read

    revoke = cli("tokens", "revoke", entry.id, "--file", str(tmp_path / "tokens.db"))
    assert revoke.wait(timeout=60) == 0, revoke.stderr.read()

    assert api_side.authenticate(secret) is None
    assert api_side.get(entry.id) is None


def test_a_token_created_by_another_store_is_seen_at_once(tmp_path) -> None:
    api_side = TokenStore(tmp_path / "tokens.db")
    assert api_side.list() == []
    _, secret = TokenStore(tmp_path / "tokens.db").create("late", "admin")
    assert api_side.authenticate(secret).name == "late"


def test_thousands_of_tokens_each_authenticate_to_their_own_entry(tmp_path) -> None:
    secrets = old_json_file(tmp_path / "tokens.json", 5000)
    store = TokenStore(tmp_path / "tokens.json")
    new, new_secret = store.create("newest", "viewer")
    assert len(store.list()) == 5001
    for tid in ("00000000", "000009c4", "00001387"):  # first, middle, last
        assert store.authenticate(secrets[tid]).id == tid
    assert store.authenticate(new_secret) == new
    assert store.authenticate("tp_not-a-token") is None


def test_an_old_json_tokens_file_is_converted_in_place_keeping_a_backup(tmp_path) -> None:
    path = tmp_path / "tokens.json"
    secrets = old_json_file(path, 3)
    original = path.read_bytes()

    store = TokenStore(path)

    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    assert (tmp_path / "tokens.json.json-backup").read_bytes() == original
    assert oct((tmp_path / "tokens.json.json-backup").stat().st_mode & 0o777) == "0o600"
    assert [e.id for e in store.list()] == list(secrets)
    for tid, secret in secrets.items():
        assert store.authenticate(secret).id == tid
    assert TokenStore(path).list() == store.list()  # imported once, not again


def test_a_json_file_beside_a_new_database_path_is_imported(tmp_path) -> None:
    secrets = old_json_file(tmp_path / "tokens.json", 2)
    store = TokenStore(tmp_path / "tokens.db")
    assert {e.id for e in store.list()} == set(secrets)
    assert json.loads((tmp_path / "tokens.json").read_text())["tokens"]  # left as it was


def test_a_database_named_json_beside_a_new_path_is_not_imported(tmp_path) -> None:
    TokenStore(tmp_path / "tokens.json").create("elsewhere", "admin")
    assert TokenStore(tmp_path / "tokens.db").list() == []


def test_a_file_that_is_neither_database_nor_json_is_refused_and_left_alone(tmp_path) -> None:
    path = tmp_path / "tokens.db"
    path.write_text("not tokens")
    with pytest.raises(ValueError, match="neither a taskpulse token database nor a JSON"):
        TokenStore(path)
    assert path.read_text() == "not tokens"


def test_roles_are_ordered_viewer_operator_admin() -> None:
    assert role_allows("admin", "operator")
    assert role_allows("operator", "viewer")
    assert not role_allows("viewer", "operator")
    assert not role_allows("nobody", "viewer")


def test_unknown_role_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown role"):
        TokenStore(tmp_path / "tokens.db").create("x", "root")
