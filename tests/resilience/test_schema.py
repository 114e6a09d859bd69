"""schemathesis over the whole OpenAPI schema of a running desk, as a registered user: valid
and invalid requests (bounded examples per operation) through its examples, coverage (edge
values: empty enums, bounds, wrong types) and fuzzing phases. Every answer must be: no 5xx,
a status and a body the schema documents (every error documents the error envelope, see
config/schema.py, so each error body is checked against the envelope), the documented content
type, and invalid input refused (no schema-violating request accepted)."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = 12  # per operation and phase: the run stays within a couple of minutes on 2 cores
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,negative_data_rejection"
)


def schemathesis(desk, token: str, workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """The schemathesis CLI, run in `workdir` (where it keeps its cache: each run starts afresh)."""
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "run",
        f"{desk.base}/api/schema/",
        "--url",
        desk.base,
        "--header",
        f"Authorization: Bearer {token}",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(EXAMPLES),
        # One worker: with two threads, hypothesis's lambda descriptions call ast.parse
        # concurrently, which CPython 3.11 can fail ("AST constructor recursion depth mismatch").
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--suppress-health-check",
        "all",
        "--seed",
        "22",
        "--no-color",
        "--generation-database",
        "none",
        *args,
    ]
    return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.timeout(900)
def test_every_operation_answers_within_its_schema(live_desk, desk_user, tmp_path):
    _email, token = desk_user
    run = schemathesis(live_desk, token, tmp_path, "--checks", CHECKS)
    assert run.returncode == 0, run.stdout[-12000:] + run.stderr[-3000:]
    assert "No issues found" in run.stdout or " passed" in run.stdout, run.stdout[-3000:]
    assert live_desk.exits() == [], live_desk.log_text()[-4000:]
