"""Shared fixtures: every test writes generated modules into its own temporary folder."""

import pytest


@pytest.fixture(autouse=True)
def generated_dir(tmp_path_factory, monkeypatch):
    """Point SYMNET_GENERATED_DIR at a per-session temporary folder."""
    path = tmp_path_factory.getbasetemp() / "generated"
    monkeypatch.setenv("SYMNET_GENERATED_DIR", str(path))
    return path
