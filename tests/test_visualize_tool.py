"""tools/visualize.py: grids of crops with masks, skeletons and part regions."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from reid_ext.data.synthetic import generate_synthetic
from reid_ext.preprocess.visualize import main, overlay_mask, render_cell

TINY = {"num_train_ids": 2, "num_test_ids": 1, "images_per_id_per_camera": 2, "num_cameras": 2}


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    generate_synthetic("person", root, progress=False, workers=1, **TINY)
    return root


def test_overlay_mask_blends_only_where_the_mask_is():
    image = np.full((4, 2, 3), 100, np.uint8)
    mask = np.zeros((4, 2), np.float32)
    mask[0, 0] = 1.0
    out = overlay_mask(image, mask, alpha=0.5)
    np.testing.assert_array_equal(out[0, 0], [177, 70, 70])  # 0.5*100 + 0.5*(255, 40, 40)
    np.testing.assert_array_equal(out[1:], image[1:])


def test_keypoints_are_drawn_only_when_confident():
    image = np.zeros((32, 16, 3), np.uint8)
    points = np.zeros((17, 3), np.float32)
    points[0] = (8, 8, 0.9)
    cell = np.asarray(render_cell(image, 2.0, points=points, skeleton="coco17"))
    assert cell.shape == (64, 32, 3)
    assert cell[17, 17].sum() > 0           # around (8, 8) scaled by 2
    points[0, 2] = 0.0
    blank = np.asarray(render_cell(image, 2.0, points=points, skeleton="coco17"))
    assert blank.sum() == 0


@pytest.mark.parametrize("mode", ["masks", "keypoints", "parts"])
def test_tool_writes_a_grid(mode, tiny_root, tmp_path, capsys):
    from reid_ext.data.options import set_dataset_options

    set_dataset_options("synthetic_person", **TINY)
    out = tmp_path / f"{mode}.png"
    assert main([mode, "--dataset", "synthetic_person", "--root", str(tiny_root), "--num", "6",
                 "--columns", "3", "--scale", "1", "--out", str(out)]) == 0
    with Image.open(out) as sheet:
        # 3 columns x 2 rows of 64x128 crops with 2-pixel gaps
        assert sheet.size == (3 * 66 + 2, 2 * 130 + 2)
    assert "missing masks 0, missing keypoints 0" in capsys.readouterr().out


def test_missing_cache_entries_are_counted(tiny_root, tmp_path, capsys):
    from reid_ext.data.options import set_dataset_options
    from reid_ext.preprocess.cache import write_manifest

    empty = tmp_path / "empty_masks"
    write_manifest(empty, "mask", "none", "", "0", 0)
    set_dataset_options("synthetic_person", **TINY)
    assert main(["masks", "--dataset", "synthetic_person", "--root", str(tiny_root), "--num",
                 "4", "--mask-dir", str(empty), "--out", str(tmp_path / "m.png")]) == 0
    assert "missing masks 4" in capsys.readouterr().out
