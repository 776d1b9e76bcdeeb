"""Fixtures of the MQTT tests; helpers live in mqtt_helpers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.harness.mosquitto import mosquitto, mosquitto_factory  # noqa: F401 (fixtures)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "state"
    path.mkdir()
    return path
