"""The committed artifacts must match a fresh compile of the sources."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from providers.ostium.localnet.anvil import repo_root
from providers.ostium.localnet.artifacts import ARTIFACTS_DIR, CONTRACT_NAMES

COMPILE_SCRIPT = repo_root() / "providers" / "ostium" / "localnet" / "compile.js"


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_artifacts_are_up_to_date(tmp_path):
    if not (repo_root() / "node_modules" / "solc").exists():
        pytest.skip("run `npm ci --ignore-scripts` first")
    subprocess.run(["node", str(COMPILE_SCRIPT), "--out", str(tmp_path)], check=True, capture_output=True)
    for name in CONTRACT_NAMES:
        fresh = json.loads((tmp_path / f"{name}.json").read_text())
        committed = json.loads((ARTIFACTS_DIR / f"{name}.json").read_text())
        assert fresh["abi"] == committed["abi"], f"{name}: ABI out of date, run compile.js"
        assert fresh["bytecode"] == committed["bytecode"], f"{name}: bytecode out of date, run compile.js"
        assert fresh["deployedBytecode"] == committed["deployedBytecode"], name
