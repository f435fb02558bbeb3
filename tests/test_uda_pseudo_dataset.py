"""The pseudo-labelled set through torchreid's ImageDataManager and the pk sampler."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import reid_ext  # noqa: F401  (registers uda_pseudo)
from reid_ext import host
from reid_ext.data.options import clear_dataset_options, set_dataset_options
from reid_ext.uda.pseudo_dataset import PSEUDO_DATASET, read_pseudo_labels, write_pseudo_labels
from reid_ext.uda.synthetic_domain import apply_camera_style, camera_style_params


def _images(folder: Path, count: int) -> list[tuple[str, int, int]]:
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.full((32, 16, 3), i * 5 % 255, np.uint8)).save(path)
        items.append((str(path), 1000 + i, i % 3))  # true pids are ignored
    return items


def test_pseudo_labels_feed_the_data_manager_and_pk_sampler(tmp_path: Path) -> None:
    train = _images(tmp_path / "train", 40)
    test = _images(tmp_path / "test", 6)
    labels = np.repeat(np.arange(8), 5)
    labels[[3, 17]] = -1  # dropped outliers
    path = write_pseudo_labels(tmp_path / "labels.json", train, labels, test[:2], test[2:])
    assert len(read_pseudo_labels(path)["train"]) == 38
    set_dataset_options(PSEUDO_DATASET, labels_file=str(path))
    try:
        dm = host.ImageDataManager(
            root=str(tmp_path), sources=[PSEUDO_DATASET], targets=[PSEUDO_DATASET], height=32,
            width=16, transforms=[], batch_size_train=8, batch_size_test=8, workers=0,
            train_sampler="pk", num_instances=4, use_gpu=False)
    finally:
        clear_dataset_options()
    assert dm.num_train_pids == 8
    seen = 0
    for batch in dm.train_loader:
        pids = batch["pid"].tolist()
        assert len(pids) == 8
        counts = np.unique(pids, return_counts=True)[1]
        assert (counts == 4).all()  # P=2 identities x K=4 instances
        for impath, pid in zip(batch["impath"], pids):
            index = int(Path(impath).stem)
            assert labels[index] == pid >= 0
        seen += 1
    assert seen > 0


def test_mismatched_or_empty_labels_are_rejected(tmp_path: Path) -> None:
    train = _images(tmp_path / "t", 4)
    with pytest.raises(ValueError, match="4 target images"):
        write_pseudo_labels(tmp_path / "a.json", train, np.zeros(3), train, train)
    with pytest.raises(ValueError, match="outlier"):
        write_pseudo_labels(tmp_path / "a.json", train, -np.ones(4), train, train)
    clear_dataset_options()
    with pytest.raises(ValueError, match="labels file"):
        host.ImageDataManager(root=str(tmp_path), sources=[PSEUDO_DATASET],
                              targets=[PSEUDO_DATASET], workers=0, use_gpu=False)


def test_camera_style_is_a_per_camera_colour_change() -> None:
    image = np.full((4, 4, 3), 128, np.uint8)
    a = apply_camera_style(image, *camera_style_params(3, 0, 0.3))
    b = apply_camera_style(image, *camera_style_params(3, 1, 0.3))
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(apply_camera_style(image, *camera_style_params(3, 0, 0.0)),
                                  image)
