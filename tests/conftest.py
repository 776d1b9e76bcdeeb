"""Fixtures shared by every test area."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the shared datasets must sit beside the repository")
    return SHARED


@pytest.fixture(scope="session")
def shipped_config():
    from edgecall.config.loader import load_model
    from edgecall.config.root import EdgecallConfig

    return load_model(REPO / "config.yaml", EdgecallConfig)
