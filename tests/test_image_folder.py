"""The generic image_folder dataset and the col780 presets."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from reid_ext import host
from reid_ext.data.image_folder import Col780, Col780Clean, DatasetLayoutError, ImageFolderDataset
from reid_ext.data.options import get_dataset_options, set_dataset_options


@pytest.fixture
def dataset_options():
    """Set dataset options for one test and restore the previous ones afterwards."""
    saved: dict[str, dict] = {}

    def set_options(name: str, **options) -> None:
        saved.setdefault(name, get_dataset_options(name))
        set_dataset_options(name, **options)

    yield set_options
    for name, options in saved.items():
        set_dataset_options(name, **options)


def _image(path: Path, value: int, note: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    info = PngImagePlugin.PngInfo()
    info.add_text("note", note)  # a different note gives different bytes for the same pixels
    Image.fromarray(np.full((8, 4, 3), value, dtype=np.uint8)).save(path, pnginfo=info)


@pytest.fixture
def folder(tmp_path) -> Path:
    """train: pids 0007, 0003 (cams 01/02); query/gallery: pids 12, 30 (cams 01/02/03)."""
    root = tmp_path / "folder"
    _image(root / "train/0007/01_a.jpg", 1)
    _image(root / "train/0007/02_b.jpg", 2)
    _image(root / "train/0003/02_c.jpg", 3)
    _image(root / "query/12/01_q.png", 4)
    _image(root / "query/30/02_q.png", 5)
    _image(root / "gallery/12/03_g.png", 6)
    _image(root / "gallery/30/01_g.png", 7)
    shutil.copy(root / "query/12/01_q.png", root / "gallery/12/01_copy.png")
    _image(root / "gallery/30/02_same_pixels.png", 5, note="re-saved")  # same pixels as a query
    (root / "train/0003/notes.txt").write_text("not an image: skipped")
    (root / "train/.DS_Store").write_text("hidden: skipped")
    return root


def _build(cls, **kwargs):
    return cls(root=kwargs.pop("root", "unused"), mode="train", verbose=False, **kwargs)


def test_image_folder_labels(folder, dataset_options):
    dataset_options("image_folder", data_dir=str(folder))
    dataset = _build(ImageFolderDataset)
    rel = {(Path(p).relative_to(folder).as_posix(), pid, cam) for p, pid, cam, _ in dataset.train}
    # train pids relabelled by sorted folder name (0003 -> 0, 0007 -> 1); cams 01/02/03 -> 0/1/2
    assert rel == {("train/0003/02_c.jpg", 0, 1), ("train/0007/01_a.jpg", 1, 0),
                   ("train/0007/02_b.jpg", 1, 1)}
    query = {(Path(p).name, pid, cam) for p, pid, cam, _ in dataset.query}
    assert query == {("01_q.png", 12, 0), ("02_q.png", 30, 1)}
    gallery = {(Path(p).name, pid, cam) for p, pid, cam, _ in dataset.gallery}
    assert ("03_g.png", 12, 2) in gallery and len(gallery) == 4
    assert dataset.dataset_dir == str(folder) and dataset.num_train_pids == 2
    assert dataset.keypoint_format == "coco17" and dataset.aux_dirs == {}


def test_drop_query_copies_is_by_content(folder, dataset_options):
    dataset_options("image_folder", data_dir=str(folder), drop_query_copies=True)
    dataset = _build(ImageFolderDataset)
    names = sorted(Path(p).name for p, *_ in dataset.gallery)
    assert names == ["01_g.png", "02_same_pixels.png", "03_g.png"]
    assert dataset.num_dropped_copies == 1 and dataset.protocol == "clean"


def test_custom_split_names_and_options(folder, dataset_options):
    (folder / "query").rename(folder / "probe")
    dataset_options("image_folder", data_dir=str(folder), query="probe", mask_dir="/m")
    dataset = _build(ImageFolderDataset)
    assert len(dataset.query) == 2 and dataset.aux_dirs == {"mask": "/m"}
    dataset_options("image_folder", data_dir=str(folder), qeury="probe")
    with pytest.raises(KeyError, match="qeury"):
        _build(ImageFolderDataset)


def test_missing_root_names_the_expected_folder(tmp_path, dataset_options):
    dataset_options("image_folder", data_dir=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "absent")):
        _build(ImageFolderDataset)
    dataset_options("col780")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "col780")):
        _build(Col780, root=str(tmp_path))


def test_layout_errors_name_the_file(folder, dataset_options):
    dataset_options("image_folder", data_dir=str(folder))
    bad = folder / "train/0007/front.jpg"
    _image(bad, 9)
    with pytest.raises(DatasetLayoutError, match=str(bad)):
        _build(ImageFolderDataset)
    bad.unlink()
    loose = folder / "gallery/01_loose.png"
    _image(loose, 9)
    with pytest.raises(DatasetLayoutError, match=str(loose)):
        _build(ImageFolderDataset)
    loose.unlink()
    shutil.rmtree(folder / "query")
    with pytest.raises(FileNotFoundError, match=str(folder / "query")):
        _build(ImageFolderDataset)


# --- the real col780 set --------------------------------------------------------------------
def _identical_gallery_images(col780_root: Path) -> set[str]:
    """Gallery files whose bytes equal a query file's, by direct byte comparison."""
    query_bytes = {p.read_bytes() for p in (col780_root / "data/val/query").rglob("*.png")}
    return {
        str(p) for p in (col780_root / "data/val/gallery").rglob("*.png")
        if p.read_bytes() in query_bytes
    }


def test_col780_counts(col780_root, dataset_options):
    dataset_options("col780", data_dir=str(col780_root))
    published = _build(Col780)
    assert len(published.train) == 992 and published.num_train_pids == 62
    assert {pid for _, pid, _, _ in published.train} == set(range(62))
    assert {cam for _, _, cam, _ in published.train} == {0, 1}
    assert len(published.query) == 28 and len(published.gallery) == 181
    assert published.protocol == "as_published"

    clean = _build(Col780Clean)
    identical = _identical_gallery_images(col780_root)
    assert len(identical) == 17  # DATA.md: 17 of the 28 queries stand in the gallery
    assert len(clean.gallery) == 181 - len(identical) and clean.num_dropped_copies == 17
    assert identical.isdisjoint(p for p, *_ in clean.gallery)
    assert clean.query == published.query and clean.train == published.train


def test_col780_through_torchreids_data_manager(col780_root, dataset_options):
    if col780_root.name != "col780":
        dataset_options("col780", data_dir=str(col780_root))
    host.get_host().register_dataset("col780", Col780)
    manager = host.ImageDataManager(
        root=str(col780_root.parent), sources="col780", height=32, width=16, workers=0,
        batch_size_train=8,
    )
    assert manager.num_train_pids == 62 and manager.num_train_cams == 2
    assert len(manager.test_loader["col780"]["gallery"].dataset) == 181
    batch = next(iter(manager.train_loader))
    assert batch["img"].shape == (8, 3, 32, 16)
