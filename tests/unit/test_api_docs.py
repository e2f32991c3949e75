"""docs/api.md is generated from the OpenAPI document; the committed copy must be current."""

from __future__ import annotations

import subprocess
import sys

from tests.services import REPO_ROOT


def test_committed_api_reference_matches_the_code() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_api_docs.py", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
