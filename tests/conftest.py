"""Shared fixtures: generated modules go to a test cache that outlives one run.

Module names are content hashes of their definition and of symnet's own sources, and every module is verified
before import (its bytes against the recorded SHA-256), so reusing them across runs is safe; it saves the Numba
compilation of about a hundred modules per run.  The cache lives in one folder per state of symnet's sources;
the folders of other states are removed when a run starts, so it never grows past one set.  Tests that need a
fresh folder (is a module written? rewritten?) pass ``directory=tmp_path``.
"""

import os
import shutil
from pathlib import Path

import pytest

from symnet.generate import modules

TEST_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "symnet" / "tests"


@pytest.fixture(scope="session")
def test_cache():
    """``(generated folder, record folder)`` for this state of symnet's sources."""
    current = TEST_CACHE / modules.source_digest()[:16]
    if TEST_CACHE.is_dir():
        for other in TEST_CACHE.iterdir():
            if other != current:
                shutil.rmtree(other, ignore_errors=True)
    return current / "generated", current / "records"


@pytest.fixture(autouse=True)
def generated_dir(test_cache, monkeypatch):
    """Point SYMNET_GENERATED_DIR and SYMNET_RECORD_DIR at the test cache."""
    generated, records = test_cache
    monkeypatch.setenv(modules.ENVIRONMENT_VARIABLE, str(generated))
    monkeypatch.setenv(modules.RECORD_VARIABLE, str(records))
    return generated


def pytest_configure(config):
    """``SYMNET_COMPILE_REPORT=<path>``: record every Numba compile per test (tests/_compile_report.py)."""
    if os.environ.get("SYMNET_COMPILE_REPORT"):
        from tests import _compile_report

        _compile_report.register(config)
