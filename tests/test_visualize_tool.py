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



def test_region_cells_show_the_attended_images():
    """Cells: global, then foreground and three regions as attended images: pixels kept exactly
    where the mask is >= 0.5 (foreground), each region's kept pixels inside it, the rest dimmed;
    a missing mask counts as the whole image, missing keypoints as empty regions."""
    from reid_ext.preprocess.visualize import mgran_region_cells

    height, width = 64, 32
    image = np.full((height, width, 3), 100, np.uint8)
    mask = np.zeros((height, width), np.float32)
    mask[4:60, 8:24] = 1.0
    points = np.zeros((17, 3), np.float32)
    for index, (x, y) in {0: (16, 8), 5: (10, 16), 6: (22, 16), 11: (12, 34), 12: (20, 34),
                          15: (12, 58), 16: (20, 58)}.items():
        points[index] = (x, y, 0.9)
    cells = [np.asarray(c) for c in mgran_region_cells(image, mask, points, 1.0, missing=False)]
    assert len(cells) == 5 and all(c.shape == (height, width, 3) for c in cells)
    kept = [(c == 100).all(axis=2) for c in cells[1:]]
    assert all(((c == 100) | (c == 20)).all() for c in cells[1:])    # kept or dimmed to 0.2
    np.testing.assert_array_equal(kept[0], mask >= 0.5)
    for region in kept[1:]:
        assert region.any() and not (region & ~kept[0]).any()
    assert kept[1][5, 16] and not kept[3][5, 16]             # head-shoulder, not lower body
    assert kept[3][58, 12] and not kept[1][58, 12]           # lower body, not head-shoulder
    whole = mgran_region_cells(image, None, None, 1.0, missing=True)
    assert (np.asarray(whole[1]) == 100).all()                 # no mask: the whole image
    for empty in whole[2:]:                                    # no keypoints: empty regions
        assert (np.asarray(empty) == 20).all()


def test_regions_mode_draws_a_row_of_five_per_crop(tiny_root, tmp_path, capsys):
    from reid_ext.data.options import set_dataset_options

    set_dataset_options("synthetic_person", **TINY)
    out = tmp_path / "regions.png"
    assert main(["regions", "--dataset", "synthetic_person", "--root", str(tiny_root), "--num",
                 "3", "--scale", "1", "--out", str(out)]) == 0
    assert "missing masks 0, missing keypoints 0" in capsys.readouterr().out
    with Image.open(out) as sheet:
        assert sheet.size == (5 * 66 + 2, 3 * 130 + 2)


def test_regions_mode_rejects_a_non_coco_keypoint_cache(tiny_root, tmp_path):
    from reid_ext.preprocess.cache import write_keypoints, write_manifest
    from reid_ext.preprocess.visualize import render_sheet

    masks, tigers = tmp_path / "masks", tmp_path / "tiger_keypoints"
    write_manifest(masks, "mask", "none", "", "0", 0)
    write_keypoints(tigers, {"a.png": np.zeros((15, 3))}, "atrw15")
    write_manifest(tigers, "keypoints", "none", "", "0", 1, keypoint_format="atrw15")
    with pytest.raises(ValueError, match="COCO-17"):
        render_sheet("regions", tiny_root, [], tmp_path / "t.png", mask_dir=masks,
                     keypoints_dir=tigers)
