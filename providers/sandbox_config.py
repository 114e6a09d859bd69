"""The address files the loopback doubles write for the demo (`--config-out`), read where a
provider is configured to use its sandbox."""

from __future__ import annotations

import json
from pathlib import Path

from django.conf import settings


def project_path(name: str | Path) -> Path:
    """`name` as the desk reads and writes it: an absolute path as is, a relative one under the
    project (BASE_DIR), whatever the process's working directory."""
    path = Path(name)
    return path if path.is_absolute() else Path(settings.BASE_DIR) / path


def sandbox_config_read(path: str, *, label: str, start_hint: str, error: type[Exception]) -> dict:
    """The JSON object in `path` (relative to the project); `error(message)` when it is missing
    (the message says how to start the sandbox) or not JSON."""
    file = project_path(path)
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise error(f"{label} {file} not found: {start_hint}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{label} {file} is not JSON: {exc}") from exc
