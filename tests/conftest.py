"""Shared fixtures: temporary synthetic data, the optional real col780 set."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
COL780_ROOT = Path(os.environ.get("REID_EXT_COL780", REPO.parent / "shared" / "data" / "col780"))


@pytest.fixture(autouse=True)
def _deterministic_torch_and_clean_dataset_options():
    from reid_ext.data.options import clear_dataset_options

    torch.manual_seed(0)
    yield
    clear_dataset_options()


@pytest.fixture(scope="session")
def col780_root() -> Path:
    """The real col780 set; tests that use it skip, with the reason printed, where it is absent."""
    if not (COL780_ROOT / "data" / "train").is_dir():
        pytest.skip(f"col780 data not found at {COL780_ROOT} (set REID_EXT_COL780 to its folder)")
    return COL780_ROOT
