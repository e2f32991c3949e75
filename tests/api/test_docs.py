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


def test_schema_descriptions_read_the_same_whatever_msgspec_did_to_the_docstring() -> None:
    from producer_api.openapi import _tidy_descriptions

    raw = {"description": "First line.\n\n    Second paragraph,\n    indented as in source."}
    tidy = {"description": "First line.\n\nSecond paragraph,\nindented as in source."}
    _tidy_descriptions(raw)
    _tidy_descriptions(tidy)
    assert raw == tidy
    assert raw["description"] == "First line.\n\nSecond paragraph,\nindented as in source."


def test_no_paragraph_of_the_reference_renders_as_a_code_block() -> None:
    text = (REPO_ROOT / "docs" / "api.md").read_text()
    assert [line for line in text.splitlines() if line.startswith("    ")] == []


def test_served_runbook_page_matches_docs_runbook() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_runbook_page.py", "--check"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_served_runbook_has_a_section_for_every_alert_link() -> None:
    from tests.deploy.test_alert_rules import RUNBOOK_URL, alerts

    page = (REPO_ROOT / "producer_api" / "static" / "runbook.html").read_text()
    for alert in alerts():
        anchor = RUNBOOK_URL.fullmatch(alert["annotations"]["runbook_url"])["anchor"]
        assert f'id="{anchor}"' in page, alert["alert"]


def test_the_api_serves_the_runbook_the_alerts_link_to(api) -> None:
    response = api.get("/runbook", role=None)
    assert response.headers["Content-Type"].startswith("text/html")
    assert 'id="celeryworkerdown"' in response.text
