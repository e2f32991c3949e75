"""Property-based fuzzing of the running API from its own /openapi.json (schemathesis CLI).

Every documented operation gets generated valid and invalid requests with an admin token (so
every route is reached, not stopped at 403), and then the stateful phase chains operations
along the document's links (enqueue -> show/tree/events/revoke/retry/forget, workflow -> tree)
and the ones schemathesis infers (tokens, schedules, Location headers). The run fails on any
5xx, any undocumented status code, or any response that does not match the documented schema.
``--max-time`` bounds it to about a minute and a half of CI time whatever the machine.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import ApiClient, make_tokens, start_api
from tests.services import RedisServer

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
])


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    """An API of its own: the fuzzer creates tokens and enqueues junk, which must not leak.

    Its broker is a redis-server no worker listens on, so the fleet routes it fuzzes (shutdown,
    pool, consumers, pause, purge) reach nobody else's workers or queues; with no worker to
    answer, each control call waits out the (short) control timeout."""
    workdir = tmp_path_factory.mktemp("fuzz")
    server = RedisServer(workdir)
    server.start()
    tokens = make_tokens(workdir / "tokens.json")
    proc, base = start_api(server, workdir, workdir / "tokens.json",
                           TASKPULSE_API_CONTROL_TIMEOUT="0.2")
    yield ApiClient(base, tokens)
    proc.stop()
    server.stop()


@pytest.mark.slow
def test_fuzzing_the_openapi_finds_no_server_errors_or_schema_violations(
    fuzzed_api: ApiClient, tmp_path: Path
) -> None:
    st = Path(sys.executable).with_name("st")
    result = subprocess.run(
        [
            str(st), "run", f"{fuzzed_api.base_url}/openapi.json",
            "-H", f"Authorization: Bearer {fuzzed_api.tokens['admin']}",
            "--checks", CHECKS,
            # The SSE stream never ends by design; its behaviour is tested in test_sse.py.
            "--exclude-path", "/api/v1/events",
            "--phases", "examples,coverage,fuzzing,stateful",
            "--max-examples", "15", "--seed", "20261125", "--workers", "2",
            "--request-timeout", "10", "--max-time", "90",
        ],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
    )
    assert result.returncode == 0, _failures_section(result.stdout) + result.stderr[-2000:]
    # The stateful phase must have run, or the links would be untested.
    assert "Stateful" in result.stdout, result.stdout[-3000:]


def _failures_section(report: str) -> str:
    """The fuzzer's failures with the operations they came from, not just the report's tail."""
    start = report.find("FAILURES")
    return report[start:start + 12000] if start >= 0 else report[-8000:]
