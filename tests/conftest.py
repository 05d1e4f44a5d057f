"""Shared test settings. Real cases are found through one setting: LIGHTSEG_DATA (default ../shared/data)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

DATA_ROOT = Path(os.environ.get("LIGHTSEG_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (DATA_ROOT / "brats18").is_dir():
        pytest.skip(f"real cases not found at {DATA_ROOT} (set LIGHTSEG_DATA)")
    return DATA_ROOT
