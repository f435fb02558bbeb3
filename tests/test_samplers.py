"""PK samplers: batch structure, coverage, determinism, DDP split, host integration."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from reid_ext.registry import SAMPLERS
from reid_ext.samplers import PKSampler, pk, pk_camera


def make_source(images_per_id: list[int], cams_per_id: int = 1) -> list[tuple]:
    """(impath, pid, camid, dsetid) rows; identity p's i-th image is on camera i % cams."""
    return [(f"p{pid}_{i}.png", pid, i % cams_per_id, 0)
            for pid, n in enumerate(images_per_id) for i in range(n)]


def batches(sampler, source, size: int) -> list[list[tuple]]:
    order = list(sampler)
    assert len(order) == len(sampler)  # __len__ is exact
    assert len(order) % size == 0
    return [[source[i] for i in order[b:b + size]] for b in range(0, len(order), size)]


@pytest.mark.parametrize("factory", [pk, pk_camera])
@pytest.mark.parametrize("k", [2, 4])
def test_every_batch_is_p_identities_times_k(factory, k):
    rng = np.random.default_rng(0)
    source = make_source(rng.integers(1, 15, size=23).tolist(), cams_per_id=3)
    p = 5
    sampler = factory(source, batch_size=p * k, num_instances=k, seed=3)
    for batch in batches(sampler, source, p * k):
        counts = Counter(row[1] for row in batch)
        assert len(counts) == p and set(counts.values()) == {k}
        # an identity's K instances sit together, in one block
        pids = [row[1] for row in batch]
        assert all(len(set(pids[i:i + k])) == 1 for i in range(0, p * k, k))


def test_epoch_covers_every_identity_and_uses_its_images():
    images = [1, 2, 3, 4, 5, 9, 12, 4, 4, 7, 2]
    source = make_source(images)
    sampler = pk(source, batch_size=12, num_instances=4, seed=1)
    order = list(sampler)
    seen = Counter(source[i][1] for i in order)
    assert set(seen) == set(range(len(images)))
    # each identity's max(1, n // K) chunks are all used (tail padding may add more)
    assert all(seen[pid] >= 4 * max(1, n // 4) for pid, n in enumerate(images))
    # no image repeats inside an identity's chunks when it has at least K images
    for batch in batches(pk(source, batch_size=12, num_instances=4, seed=1), source, 12):
        for pid, n in enumerate(images):
            paths = [row[0] for row in batch if row[1] == pid]
            if n >= 4:
                assert len(paths) == len(set(paths))


def test_length_is_the_documented_formula():
    images = [1, 2, 3, 4, 5, 9, 12, 4, 4, 7, 2]
    chunks = sum(max(1, n // 4) for n in images)  # 14
    sampler = pk(make_source(images), batch_size=12, num_instances=4, seed=0)
    assert len(sampler) == -(-chunks // 3) * 12


def test_identity_with_fewer_than_k_images_is_sampled_with_replacement():
    source = make_source([1, 2, 8, 8])
    sampler = pk(source, batch_size=8, num_instances=4, seed=0)
    for batch in batches(sampler, source, 8):
        for pid in (0, 1):
            paths = [row[0] for row in batch if row[1] == pid]
            if paths:
                assert len(paths) == 4
                assert set(paths) == {f"p{pid}_{i}.png" for i in range(pid + 1)}


def test_same_seed_same_order_other_seed_or_epoch_differs():
    source = make_source([6] * 12)

    def order(seed: int, epoch: int = 0) -> list[int]:
        sampler = pk(source, batch_size=8, num_instances=2, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)

    assert order(5) == order(5)
    assert order(5) != order(6)
    assert order(5, epoch=1) != order(5, epoch=0)
    # without set_epoch, each __iter__ is the next epoch
    sampler = pk(source, batch_size=8, num_instances=2, seed=5)
    assert list(sampler) == order(5, 0) and list(sampler) == order(5, 1)


def test_default_seed_follows_torch_seed():
    source = make_source([6] * 12)
    torch.manual_seed(123)
    first = list(pk(source, batch_size=8, num_instances=2))
    torch.manual_seed(123)
    again = list(pk(source, batch_size=8, num_instances=2))
    torch.manual_seed(321)
    other = list(pk(source, batch_size=8, num_instances=2))
    assert first == again and first != other


def test_pk_camera_spreads_instances_over_distinct_cameras():
    # 5 cameras x 2 images per identity, K = 4: every chunk can hold 4 distinct cameras
    source = make_source([10] * 8, cams_per_id=5)
    for batch in batches(pk_camera(source, batch_size=8, num_instances=4, seed=2), source, 8):
        for start in (0, 4):
            assert len({row[2] for row in batch[start:start + 4]}) == 4
    # two cameras only: K = 4 uses both, two images each
    source = make_source([8] * 6, cams_per_id=2)
    for batch in batches(pk_camera(source, batch_size=8, num_instances=4, seed=2), source, 8):
        for start in (0, 4):
            assert Counter(row[2] for row in batch[start:start + 4]) == Counter({0: 2, 1: 2})


def test_plain_pk_does_not_spread_cameras_by_itself():
    source = make_source([10] * 8, cams_per_id=5)
    spread = [len({row[2] for row in batch[s:s + 4]})
              for batch in batches(pk(source, batch_size=8, num_instances=4, seed=2), source, 8)
              for s in (0, 4)]
    assert min(spread) < 4  # random chunks repeat a camera somewhere
    spread_opt = pk(source, batch_size=8, num_instances=4, seed=2, spread_cameras=True)
    assert all(len({row[2] for row in batch[s:s + 4]}) == 4
               for batch in batches(spread_opt, source, 8) for s in (0, 4))


@pytest.mark.parametrize("world_size", [2, 3])
def test_ranks_partition_the_epoch_into_whole_batches(world_size):
    source = make_source([5, 7, 3, 9, 4, 6, 8, 2, 5, 6])
    single = PKSampler(source, batch_size=8, num_instances=2, seed=4, rank=0, world_size=1)
    shards = [PKSampler(source, batch_size=8, num_instances=2, seed=4, rank=r,
                        world_size=world_size) for r in range(world_size)]
    everything = [b.tolist() for b in shards[0].epoch_batches(0)]
    assert len(everything) % world_size == 0
    assert len({len(s) for s in shards}) == 1  # equal lengths on all ranks
    per_rank = [list(s) for s in shards]
    for r, order in enumerate(per_rank):
        assert order == [i for b in everything[r::world_size] for i in b]
    merged = sorted(tuple(order[b:b + 8]) for order in per_rank for b in range(0, len(order), 8))
    assert merged == sorted(tuple(b) for b in everything)
    assert len(everything) >= len(single) // 8


def test_bad_arguments_raise_clear_errors():
    source = make_source([4] * 3)
    with pytest.raises(ValueError, match="multiple of num_instances=4"):
        pk(source, batch_size=10, num_instances=4)
    with pytest.raises(ValueError, match="3 identities, fewer than the P=4"):
        pk(source, batch_size=16, num_instances=4)
    with pytest.raises(ValueError, match="rank < world_size"):
        pk(source, batch_size=8, num_instances=4, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"unknown options \['shuffle'\]"):
        pk(source, batch_size=8, num_instances=4, shuffle=True)


def test_image_data_manager_accepts_pk(tmp_path):
    """After ``import reid_ext``, torchreid's own data manager builds a ``pk`` sampler."""
    from PIL import Image

    import reid_ext
    from reid_ext import host
    from reid_ext.data import options

    for split, pids in (("train", range(6)), ("query", range(6, 8)), ("gallery", range(6, 8))):
        for pid in pids:
            for cam in (1, 2):
                folder = tmp_path / split / str(pid)
                folder.mkdir(parents=True, exist_ok=True)
                colour = (pid * 40 % 256, cam * 90, 0)
                Image.new("RGB", (16, 32), colour).save(folder / f"{cam}_{split}.png")
                if split == "train":
                    Image.new("RGB", (16, 32), colour).save(folder / f"{cam}_b.png")

    saved = options.get_dataset_options("image_folder")
    options.set_dataset_options("image_folder", data_dir=str(tmp_path))
    try:
        manager = host.ImageDataManager(
            root=str(tmp_path), sources="image_folder", height=32, width=16,
            batch_size_train=6, batch_size_test=4, workers=0, num_instances=2,
            train_sampler="pk", transforms=None,
        )
    finally:
        options.set_dataset_options("image_folder", **saved)
    assert "pk" in reid_ext.SAMPLERS
    assert isinstance(manager.train_loader.sampler, PKSampler)
    pids = [pid for batch in manager.train_loader for pid in batch["pid"].tolist()]
    assert len(pids) == len(manager.train_loader.sampler)
    for b in range(0, len(pids), 6):
        assert sorted(Counter(pids[b:b + 6]).values()) == [2, 2, 2]


def test_registered_names():
    assert {"pk", "pk_camera"} <= set(SAMPLERS.names())
