"""``taskpulse workers pool|consumers|shutdown``, ``taskpulse queues pause|resume|purge|peek``
and ``taskpulse catalog limits``: operating the fleet through the API.

Control commands print what each worker answered and which did not answer; they exit 1 when a
worker answered with an error or did not answer, so a script can tell.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from collections.abc import Callable
from typing import Any, Final

from producer_api.cli.client import EXIT_API_ERROR, Api, CliError
from producer_api.cli.output import Output, format_number

ALL: Final = "*"


def _host(hostname: str) -> str:
    return urllib.parse.quote(hostname, safe="@*")


def show_control(out: Output, result: dict[str, Any]) -> None:
    rows = [{"worker": host, "result": "error" if reply.get("error") else "ok",
             "message": reply.get("error") or reply.get("ok")}
            for host, reply in result["workers"].items()]  # fmt: skip
    if rows:
        out.table(rows, ["worker", "result", "message"])
    elif not result["no_reply"]:
        print("(no worker answered; none is known to be alive)")
    if result["no_reply"]:
        print(f"no reply from: {', '.join(result['no_reply'])}")


def control_status(result: dict[str, Any]) -> int:
    failed = result["no_reply"] or any(r.get("error") for r in result["workers"].values())
    return EXIT_API_ERROR if failed else 0


def _emit_control(out: Output, result: dict[str, Any],
                  headline: Callable[[], None] | None = None) -> int:
    def show(value: dict[str, Any]) -> None:
        if headline is not None:
            headline()
        show_control(out, value)

    out.emit(result, show)
    return control_status(result)


def confirm(question: str, assume_yes: bool) -> None:
    """Ask on the terminal; anything but y/yes stops the command (exit 1)."""
    if assume_yes:
        return
    if not sys.stdin.isatty():
        raise CliError(f"{question} — not asked: no terminal; pass --yes to confirm")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes"):
        raise CliError("cancelled, nothing changed")


# ------------------------------------------------------------------------------ workers


def cmd_pool(api: Api, out: Output, args: argparse.Namespace) -> int:
    if args.grow is not None:
        body: dict[str, Any] = {"grow": args.grow}
    elif args.shrink is not None:
        body = {"shrink": args.shrink}
    elif args.autoscale is not None:
        high, _, low = args.autoscale.partition(",")
        try:
            body = {"autoscale": {"max": int(high), "min": int(low or 0)}}
        except ValueError:
            raise CliError(f"--autoscale takes MAX[,MIN], not {args.autoscale!r}", 2) from None
    else:
        body = {"restart": True}
    result = api.call("POST", f"/workers/{_host(args.hostname)}/pool", body)
    return _emit_control(out, result)


def cmd_consumers(api: Api, out: Output, args: argparse.Namespace) -> int:
    body = {"add": args.add} if args.add else {"cancel": args.cancel}
    result = api.call("POST", f"/workers/{_host(args.hostname)}/consumers", body)
    return _emit_control(out, result)


def cmd_shutdown(api: Api, out: Output, args: argparse.Namespace) -> int:
    who = "every worker" if args.hostname == ALL else args.hostname
    confirm(f"shut down {who}? (running tasks finish first)", args.yes)
    result = api.call("POST", f"/workers/{_host(args.hostname)}/shutdown")
    return _emit_control(out, result)


def register_workers(wsub: Any, common: argparse.ArgumentParser) -> None:
    host_help = "a worker's hostname (w1@box), or '*' for every worker"
    p = wsub.add_parser(
        "pool", parents=[common], help="grow, shrink, autoscale or restart a worker's pool",
        description="Change a worker's pool by Celery remote control (admin). Exits 1 when a "
        "worker answered with an error or did not answer.",
        epilog="examples:\n  taskpulse workers pool w1@box --grow 2\n"
        "  taskpulse workers pool '*' --autoscale 8,2\n  taskpulse workers pool w1@box --restart",
    )
    p.add_argument("hostname", help=host_help)
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--grow", type=int, metavar="N", help="add N processes")
    how.add_argument("--shrink", type=int, metavar="N", help="remove N processes")
    how.add_argument("--autoscale", metavar="MAX[,MIN]",
                     help="autoscale bounds (a worker started with --autoscale)")
    how.add_argument("--restart", action="store_true",
                     help="restart the pool's processes (needs worker_pool_restarts)")
    p.set_defaults(func=cmd_pool)

    p = wsub.add_parser(
        "consumers", parents=[common], help="start or stop consuming a queue on a worker",
        description="Make a worker consume a queue (--add) or stop (--cancel) (admin). To stop "
        "a queue on every worker and keep it stopped, see `taskpulse queues pause`.",
        epilog="example:\n  taskpulse workers consumers w1@box --cancel reports",
    )
    p.add_argument("hostname", help=host_help)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--add", metavar="QUEUE")
    which.add_argument("--cancel", metavar="QUEUE")
    p.set_defaults(func=cmd_consumers)

    p = wsub.add_parser(
        "shutdown", parents=[common], help="shut a worker down (it finishes running tasks)",
        description="Warm shutdown by remote control (admin): the worker finishes its running "
        "tasks and exits. A supervisor may start it again. Asks first unless --yes.",
    )
    p.add_argument("hostname", help=host_help)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_shutdown)


# ------------------------------------------------------------------------------- queues


def cmd_pause(api: Api, out: Output, args: argparse.Namespace) -> int:
    result = api.call("POST", f"/queues/{_host(args.queue)}/pause")
    return _emit_control(out, result, lambda: print(
        f"{args.queue}: paused (its messages wait until `taskpulse queues resume {args.queue}`)"))


def cmd_resume(api: Api, out: Output, args: argparse.Namespace) -> int:
    result = api.call("POST", f"/queues/{_host(args.queue)}/resume")
    return _emit_control(out, result, lambda: print(f"{args.queue}: resumed"))


def _waiting(api: Api, queue: str) -> int:
    return int(api.call("GET", f"/queues/{_host(queue)}/messages", query={"limit": 1})["length"])


def cmd_purge(api: Api, out: Output, args: argparse.Namespace) -> int:
    waiting = _waiting(api, args.queue)
    if waiting:
        confirm(f"delete the {waiting} messages waiting in {args.queue}?", args.yes)
    # The count just shown: if more arrived since, the API refuses (409) and nothing is lost.
    result = api.call("POST", f"/queues/{_host(args.queue)}/purge", {"expected": waiting})
    out.emit(result, lambda r: print(f"{r['queue']}: {r['purged']} messages purged"))
    return 0


def cmd_peek(api: Api, out: Output, args: argparse.Namespace) -> int:
    def show(page: dict[str, Any]) -> None:
        print(f"{page['queue']}: {page['length']} waiting; the first {len(page['messages'])} in "
              f"the order they would be taken")
        out.table(page["messages"], ["id", "name", "priority", "args", "kwargs", "eta"])

    page = api.call("GET", f"/queues/{_host(args.queue)}/messages", query={"limit": args.limit})
    out.emit(page, show)
    return 0


def register_queues(qsub: Any, common: argparse.ArgumentParser) -> None:
    for name, func, text in (
        ("pause", cmd_pause, "stop every worker consuming a queue; its messages wait (operator)"),
        ("resume", cmd_resume, "consume a paused queue again (operator)"),
    ):
        p = qsub.add_parser(name, parents=[common], help=text,
                            description=text[0].upper() + text[1:] + ".")
        p.add_argument("queue")
        p.set_defaults(func=func)
    p = qsub.add_parser(
        "purge", parents=[common], help="delete a queue's waiting messages (admin)",
        description="Delete every message waiting in a queue, all priorities (admin). Shows "
        "the count and asks first unless --yes; the API refuses if more are waiting by then.",
    )
    p.add_argument("queue")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.set_defaults(func=cmd_purge)
    p = qsub.add_parser(
        "peek", parents=[common], help="show waiting messages without consuming them",
        description="The first messages waiting in a queue, in the order a worker would take "
        "them; none is consumed.",
    )
    p.add_argument("queue")
    p.add_argument("--limit", type=int, default=20, help="how many (1-100, default 20)")
    p.set_defaults(func=cmd_peek)


# ------------------------------------------------------------------- catalog limits

LIMIT_OPTIONS: Final = ("rate_limit", "time_limits", "clear")


def _time_limits(text: str) -> tuple[float, float]:
    soft, slash, hard = text.partition("/")
    try:
        if not slash:
            raise ValueError
        return float(soft), float(hard)
    except ValueError:
        raise CliError(f"--time-limits takes SOFT/HARD seconds (60/90), not {text!r}", 2) from None


def cmd_limits(api: Api, out: Output, args: argparse.Namespace, names: list[str]) -> int:
    if len(names) != 1:
        raise CliError("usage: taskpulse catalog limits NAME [--rate-limit R] "
                       "[--time-limits SOFT/HARD | --clear]", 2)
    path = f"/catalog/{urllib.parse.quote(names[0], safe='')}/limits"
    if args.rate_limit is not None or args.time_limits is not None or args.clear:
        body: dict[str, Any] = {}
        if args.rate_limit is not None:
            body["rate_limit"] = args.rate_limit
        if args.time_limits is not None:
            body["soft_time_limit"], body["time_limit"] = _time_limits(args.time_limits)
        result = api.call("PUT", path, body)
        return _emit_control(out, result, lambda: print(
            f"{result['name']}: {_describe(result['desired'])}"))

    def show(view: dict[str, Any]) -> None:
        who = f" (set by {view['set_by']} at {out.time(view['set_at'])})" if view["set_by"] else ""
        print(f"{view['name']}: {_describe(view['desired'] or {})}{who}")
        rows = [{"worker": host, **limits} for host, limits in view["workers"].items()]
        out.table(rows, ["worker", "rate_limit", "soft_time_limit", "time_limit"])
        if view["no_reply"]:
            print(f"no reply from: {', '.join(view['no_reply'])}")

    out.emit(api.call("GET", path), show)
    return 0


def _describe(limits: dict[str, Any]) -> str:
    parts = [f"rate {limits['rate_limit']}" if limits.get("rate_limit") else "no rate limit"]
    if limits.get("time_limit") is not None:
        parts.append(f"time limits {format_number(limits['soft_time_limit'])}s soft / "
                     f"{format_number(limits['time_limit'])}s hard")
    else:
        parts.append("time limits as the workers are configured")
    return ", ".join(parts)


def add_limit_options(p: argparse.ArgumentParser) -> None:
    group = p.add_argument_group("with `catalog limits NAME`")
    group.add_argument("--rate-limit", metavar="RATE",
                       help="Celery syntax: 10/m, 2/s, 100/h; 0 for none")
    group.add_argument("--time-limits", metavar="SOFT/HARD",
                       help="seconds: soft raises in the task, hard kills it")
    group.add_argument("--clear", action="store_true",
                       help="no rate limit, and the workers' own time limits")
