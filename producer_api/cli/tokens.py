"""``taskpulse tokens ...``: API tokens, through the API or straight in the tokens file.

With a tokens file (``--file`` or ``TASKPULSE_API_TOKENS_FILE``) the file is edited directly, no
API needed: that is how the first admin token is made. A file that cannot be used (another
process holding its write lock past the store's busy timeout, a file that is neither a token
database nor an old JSON tokens file, a disk error) is one error line, as an API failure is.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from producer_api.auth import TokenStore
from producer_api.cli.arguments import ROLES
from producer_api.cli.client import Api, CliError
from producer_api.cli.output import Output
from producer_api.errors import Unavailable


@contextmanager
def _token_file(args: argparse.Namespace) -> Iterator[TokenStore | None]:
    """The store in the tokens file, or None to go through the API."""
    path = args.file or os.environ.get("TASKPULSE_API_TOKENS_FILE")
    if not path:
        yield None
        return
    try:
        yield TokenStore(path)
    except Unavailable as exc:  # its cause holds SQLite's words ("database is locked", ...)
        raise CliError(f"the tokens file {path} is unavailable: {exc.__cause__ or exc}") from None
    except (ValueError, OSError, sqlite3.Error) as exc:
        raise CliError(f"cannot use the tokens file {path}: {exc}") from None


def cmd_create(api: Api, out: Output, args: argparse.Namespace) -> int:
    with _token_file(args) as store:
        if store is not None:
            entry, secret = store.create(args.name, args.role)
            created = {"id": entry.id, "name": entry.name, "role": entry.role,
                       "created": entry.created, "token": secret}  # fmt: skip
        else:
            created = api.call("POST", "/tokens", {"name": args.name, "role": args.role})
    out.emit(created, lambda c: print(
        f"created {c['role']} token {c['id']} ({c['name']}). It is shown only once:\n\n"
        f"    {c['token']}\n\nexport TASKPULSE_TOKEN={c['token']}"))
    return 0


def cmd_list(api: Api, out: Output, args: argparse.Namespace) -> int:
    with _token_file(args) as store:
        if store is not None:
            tokens = [{"id": e.id, "name": e.name, "role": e.role, "created": e.created}
                      for e in store.list()]  # fmt: skip
        else:
            tokens = api.call("GET", "/tokens")["tokens"]
    out.emit({"tokens": tokens},
             lambda t: out.table(t["tokens"], ["id", "name", "role", "created"]))  # fmt: skip
    return 0


def cmd_revoke(api: Api, out: Output, args: argparse.Namespace) -> int:
    with _token_file(args) as store:
        if store is not None:
            if not store.revoke(args.id):
                raise CliError(f"no token {args.id!r} in {store.path}")
        else:
            api.call("DELETE", f"/tokens/{args.id}")
    out.emit({"id": args.id, "deleted": True}, lambda r: print(f"revoked token {r['id']}"))
    return 0


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    tokens = sub.add_parser(
        "tokens", help="API tokens (admin)",
        description="Bearer tokens with a role: viewer reads, operator also sends and retries, "
        "admin also revokes and manages tokens and schedules. Secrets are stored hashed.",
        epilog="examples:\n"
        "  taskpulse tokens create --role admin --name me --file tokens.db   # no API needed\n"
        "  taskpulse tokens create --role operator --name ci",
    )
    ksub = tokens.add_subparsers(dest="action", required=True, metavar="ACTION")
    file_help = ("edit this tokens file directly instead of going through the API "
                 "(default: TASKPULSE_API_TOKENS_FILE if set)")
    p = ksub.add_parser("create", parents=[common], help="create a token (shown once)")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--name", default=os.environ.get("USER", "operator"))
    p.add_argument("--file", help=file_help)
    p.set_defaults(func=cmd_create)
    p = ksub.add_parser("list", parents=[common], help="list tokens (never their secrets)")
    p.add_argument("--file", help=file_help)
    p.set_defaults(func=cmd_list)
    p = ksub.add_parser("revoke", parents=[common], help="revoke a token by id")
    p.add_argument("id")
    p.add_argument("--file", help=file_help)
    p.set_defaults(func=cmd_revoke)
