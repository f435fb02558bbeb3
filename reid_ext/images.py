"""Reading images safely: a clear error naming the file, or a counted skip; never a hang.

torchreid's ``read_image`` retries forever ("Will redo. Don't worry. Just chill.") on a file
that exists but cannot be decoded. :func:`read_rgb_image` replaces it in the host (see
``Host.install_image_reader``) and in the aux-map datasets, so every image the engine loads
goes through it. It raises :class:`UnreadableImageError` naming the file.

16-bit images (PIL modes ``I;16*`` and ``I``, e.g. 16-bit grayscale PNGs) are scaled to 8 bits
(``value >> 8``); PIL's own ``convert("RGB")`` clips them and turns them all white. Float
images (mode ``F``) and 32-bit integer images whose values exceed 16 bits are refused.

With ``data.skip_bad_images true`` the loaders are wrapped (:func:`skip_bad_images_in`): an
unreadable image is dropped from its batch and counted in :data:`BAD_IMAGES`, whose
:meth:`BadImageLog.summary` the runner prints at the end.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import DataLoader, Dataset, default_collate

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
SKIPPED_KEY = "skipped_images"


class UnreadableImageError(OSError):
    """An image file that exists but cannot be decoded (or has an unsupported pixel format)."""


def _to_eight_bit(image: Image.Image, path: str) -> Image.Image:
    """A 16-bit (or ``I``) grayscale image scaled to 8-bit ``L``; other modes unchanged."""
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        values = np.asarray(image).astype(np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise UnreadableImageError(
                f"image '{path}' has mode {image.mode} with values in [{values.min()}, "
                f"{values.max()}]; only 8- or 16-bit images are supported")
        return Image.fromarray((values >> 8).astype(np.uint8), mode="L")
    if image.mode in ("F", "I;32", "I;32B"):
        raise UnreadableImageError(
            f"image '{path}' has mode {image.mode} (floating point or 32-bit); convert it to an "
            f"8-bit RGB image first")
    return image


def read_rgb_image(path: str) -> Image.Image:
    """Decode ``path`` fully into an 8-bit RGB PIL image; errors name the file, never retry."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"image '{path}' does not exist")
    try:
        with Image.open(path) as image:
            image.load()
            return _to_eight_bit(image, path).convert("RGB")
    except UnreadableImageError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(f"cannot read image '{path}': {err}") from err


def check_image_header(path: str) -> None:
    """Cheap check (header only, no full decode): raise :class:`UnreadableImageError`."""
    try:
        with Image.open(path) as image:
            image.verify()
    except (OSError, ValueError, SyntaxError) as err:
        raise UnreadableImageError(f"cannot read image '{path}': {err}") from err


@dataclass
class BadImageLog:
    """Unreadable images dropped from batches (main process; workers report via the batch)."""

    paths: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def add(self, path: str, reason: str) -> None:
        self.paths.append(path)
        self.reasons.append(reason)

    def clear(self) -> None:
        self.paths.clear()
        self.reasons.clear()

    def summary(self) -> str:
        if not self.paths:
            return "bad images: none skipped"
        unique = sorted(set(self.paths))
        return (f"bad images: skipped {len(self.paths)} loads of {len(unique)} unreadable "
                f"file(s) (data.skip_bad_images): {unique[:10]}")


BAD_IMAGES = BadImageLog()


class _Skipped:
    """Placeholder for an item whose image could not be read (dropped by the collate)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason


class SkipBadImages(Dataset):
    """``dataset`` whose unreadable items become placeholders instead of exceptions."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:  # data, transform, ... of the wrapped set
        if name == "dataset":
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except UnreadableImageError as err:
            return _Skipped(_path_of(self.dataset, index), str(err))


def _path_of(dataset: Any, index: int) -> str:
    try:
        return str(dataset.data[index][0])
    except (AttributeError, IndexError, TypeError):
        return f"<item {index}>"


def make_skipping_collate(collate: Callable[[list], Any] | None) -> Callable[[list], Any]:
    """A collate that drops placeholders and lists their paths under ``skipped_images``."""
    collate = collate or default_collate

    def collate_skipping(items: Sequence[Any]) -> Any:
        good = [item for item in items if not isinstance(item, _Skipped)]
        skipped = [(item.path, item.reason) for item in items if isinstance(item, _Skipped)]
        batch = collate(good) if good else {}
        if isinstance(batch, dict):
            batch[SKIPPED_KEY] = skipped
        return batch

    return collate_skipping


class SkippingLoader(DataLoader):
    """A DataLoader that records the skipped images of each batch in :data:`BAD_IMAGES` and
    yields only batches with at least one image."""

    def __iter__(self) -> Iterator[Any]:
        for batch in super().__iter__():
            if isinstance(batch, dict):
                for path, reason in batch.pop(SKIPPED_KEY, []):
                    BAD_IMAGES.add(path, reason)
                if not batch:
                    continue
            yield batch


def skipping_loader(loader: DataLoader) -> DataLoader:
    """A :class:`SkippingLoader` with ``loader``'s sampler, batching and workers."""
    if isinstance(loader, SkippingLoader):
        return loader
    kwargs: dict[str, Any] = {
        "num_workers": loader.num_workers, "pin_memory": loader.pin_memory,
        "collate_fn": make_skipping_collate(loader.collate_fn),
        "worker_init_fn": loader.worker_init_fn, "timeout": loader.timeout,
        "persistent_workers": loader.persistent_workers,
    }
    if loader.num_workers > 0:
        kwargs["prefetch_factor"] = loader.prefetch_factor
    dataset = SkipBadImages(loader.dataset)
    if loader.batch_size is None:
        return SkippingLoader(dataset, batch_sampler=loader.batch_sampler, **kwargs)
    return SkippingLoader(dataset, sampler=loader.sampler, batch_size=loader.batch_size,
                          drop_last=loader.drop_last, **kwargs)


def skip_bad_images_in(datamanager: Any) -> None:
    """Wrap every train and test loader of ``datamanager`` so unreadable images are skipped."""
    for attr in ("train_loader", "train_loader_t"):
        if getattr(datamanager, attr, None) is not None:
            setattr(datamanager, attr, skipping_loader(getattr(datamanager, attr)))
    for loaders in datamanager.test_loader.values():
        for split in ("query", "gallery"):
            loaders[split] = skipping_loader(loaders[split])
