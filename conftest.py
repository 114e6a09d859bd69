"""Repository-root conftest: makes the repo importable first, so our
``tests`` package wins over the one ostium-python-sdk installs into
site-packages."""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: slower end-to-end tests")
