"""Pictures of an aux-map cache: crops with their masks, skeletons or part regions overlaid,
tiled into one PNG grid so that a person can judge a cache at a glance. ``regions`` draws what
MGRAN attends to: a row per crop with the global image (and skeleton), the binarised
foreground and the three keypoint regions cut by it (``reid_ext.models.mgran``).

Drawing is plain PIL/numpy. A crop missing from its cache gets a red frame (and is counted).
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MASK_COLOUR = np.array([255, 40, 40], np.float32)
MISSING_COLOUR = (230, 0, 0)
PART_COLOURS = np.array([
    [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230],
], np.float32)

# Limbs drawn between keypoints, by name (left side green, right side blue, centre yellow).
SKELETON_EDGES: dict[str, tuple[tuple[str, str], ...]] = {
    "coco17": (
        ("left_ankle", "left_knee"), ("left_knee", "left_hip"),
        ("right_ankle", "right_knee"), ("right_knee", "right_hip"),
        ("left_hip", "right_hip"), ("left_shoulder", "left_hip"),
        ("right_shoulder", "right_hip"), ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
        ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
        ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"),
        ("right_eye", "right_ear"),
    ),
    "atrw15": (
        ("left_ear", "nose"), ("right_ear", "nose"), ("nose", "center"),
        ("center", "tail"), ("left_shoulder", "center"), ("right_shoulder", "center"),
        ("left_shoulder", "left_front_paw"), ("right_shoulder", "right_front_paw"),
        ("left_hip", "tail"), ("right_hip", "tail"), ("left_hip", "left_knee"),
        ("left_knee", "left_back_paw"), ("right_hip", "right_knee"),
        ("right_knee", "right_back_paw"),
    ),
}


def _side_colour(a: str, b: str) -> tuple[int, int, int]:
    if a.startswith("left_") or b.startswith("left_"):
        return (40, 220, 40)
    if a.startswith("right_") or b.startswith("right_"):
        return (40, 120, 255)
    return (255, 220, 0)


def overlay_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``image`` tinted red where ``mask`` (HxW in [0, 1]) is high."""
    weight = alpha * np.clip(mask, 0, 1)[..., None]
    return (image.astype(np.float32) * (1 - weight) + MASK_COLOUR * weight).astype(np.uint8)


def overlay_parts(image: np.ndarray, parts: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """``image`` with each part region ``[P, H, W]`` tinted in its own colour (later on top)."""
    out = image.astype(np.float32)
    for index, region in enumerate(np.asarray(parts, np.float32)):
        weight = alpha * region[..., None]
        out = out * (1 - weight) + PART_COLOURS[index % len(PART_COLOURS)] * weight
    return out.astype(np.uint8)


def draw_keypoints(canvas: Image.Image, points: np.ndarray, skeleton: str, scale: float,
                   min_score: float = 0.1) -> None:
    """Draw limbs and points whose score exceeds ``min_score`` on a crop scaled by ``scale``."""
    from reid_ext.skeletons import get_keypoint_format

    layout = get_keypoint_format(skeleton)
    draw = ImageDraw.Draw(canvas)

    def at(index: int) -> tuple[float, float]:
        return ((points[index, 0] + 0.5) * scale - 0.5, (points[index, 1] + 0.5) * scale - 0.5)

    width = max(1, round(scale))
    for a, b in SKELETON_EDGES.get(skeleton, ()):
        i, j = layout.index(a), layout.index(b)
        if points[i, 2] > min_score and points[j, 2] > min_score:
            draw.line([at(i), at(j)], fill=_side_colour(a, b), width=width)
    radius = max(1.5, scale)
    for index in range(layout.num_keypoints):
        if points[index, 2] > min_score:
            x, y = at(index)
            draw.ellipse([x - radius, y - radius, x + radius, y + radius],
                         fill=(255, 255, 255), outline=(0, 0, 0))


def grid(cells: Sequence[Image.Image], columns: int, gap: int = 2) -> Image.Image:
    """Tile equally sized cells (the largest size sets the slot) on a dark background."""
    columns = max(1, min(columns, len(cells)))
    rows = (len(cells) + columns - 1) // columns
    cell_w = max(c.width for c in cells)
    cell_h = max(c.height for c in cells)
    sheet = Image.new("RGB", (columns * (cell_w + gap) + gap, rows * (cell_h + gap) + gap),
                      (24, 24, 24))
    for index, cell in enumerate(cells):
        row, col = divmod(index, columns)
        sheet.paste(cell, (gap + col * (cell_w + gap), gap + row * (cell_h + gap)))
    return sheet


def render_cell(
    image: np.ndarray,
    scale: float,
    mask: np.ndarray | None = None,
    points: np.ndarray | None = None,
    skeleton: str | None = None,
    parts: np.ndarray | None = None,
    missing: bool = False,
) -> Image.Image:
    """One crop with whatever layers are given, scaled by ``scale``."""
    pixels = image
    if mask is not None:
        pixels = overlay_mask(pixels, mask)
    if parts is not None:
        pixels = overlay_parts(pixels, parts)
    height, width = image.shape[:2]
    canvas = Image.fromarray(pixels).resize((round(width * scale), round(height * scale)),
                                            Image.BILINEAR)
    if points is not None and skeleton is not None:
        draw_keypoints(canvas, points, skeleton, scale)
    if missing:
        ImageDraw.Draw(canvas).rectangle([0, 0, canvas.width - 1, canvas.height - 1],
                                         outline=MISSING_COLOUR, width=3)
    return canvas


MODES = ("masks", "keypoints", "parts", "regions")
ATTENDED_DIM = 0.2  # brightness left outside a region in the regions mode's attended images


def mgran_region_cells(image: np.ndarray, mask: np.ndarray | None, points: np.ndarray | None,
                       scale: float, missing: bool) -> list[Image.Image]:
    """One crop's MGRAN maps as cells: global (with skeleton), then the attended images of the
    foreground and the three regions (pixels outside a map dimmed to ``ATTENDED_DIM``).

    As the model does with ``aux.on_missing: fallback``: a missing mask is the whole image and
    missing keypoints leave the keypoint regions empty (an all-dim cell).
    """
    import torch

    from reid_ext.models.mgran import mgran_region_maps

    height, width = image.shape[:2]
    mask_t = torch.ones(1, 1, height, width) if mask is None else \
        torch.as_tensor(mask, dtype=torch.float32)[None, None]
    points_t = torch.zeros(1, 17, 3) if points is None else \
        torch.as_tensor(points, dtype=torch.float32)[None]
    maps = mgran_region_maps(mask_t, points_t, (height, width))[0].numpy()  # [5, H, W]
    cells = [render_cell(image, scale, points=points, skeleton="coco17", missing=missing)]
    for region in maps[1:]:
        weight = region[..., None] + ATTENDED_DIM * (1 - region[..., None])
        cells.append(render_cell((image * weight).astype(np.uint8), scale))
    return cells


def render_sheet(
    mode: str,
    root: str | os.PathLike,
    impaths: Sequence[str],
    out_png: str | os.PathLike,
    mask_dir: str | os.PathLike | None = None,
    keypoints_dir: str | os.PathLike | None = None,
    parts_scheme: str | None = None,
    columns: int = 8,
    scale: float = 2.0,
) -> dict[str, int]:
    """Draw ``impaths`` in ``mode`` (one of :data:`MODES`) into ``out_png``.

    ``masks`` also draws skeletons when a ``keypoints_dir`` is given; ``regions`` needs both
    caches (COCO-17 keypoints) and draws five cells per crop, one crop per row. Returns counts
    ``{"images", "missing_mask", "missing_keypoints"}``.
    """
    from reid_ext.preprocess.cache import KeypointCache, MaskCache, image_relpath
    from reid_ext.preprocess.extract import read_image

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got '{mode}'")
    if mode in ("masks", "regions") and mask_dir is None:
        raise ValueError(f"mode '{mode}' needs a mask cache (--mask-dir or the config's aux.mask)")
    if mode in ("keypoints", "parts", "regions") and keypoints_dir is None:
        raise ValueError(f"mode '{mode}' needs a keypoint cache (--keypoints-dir or aux.keypoints)")
    masks = MaskCache(mask_dir) if mask_dir is not None else None
    keypoints = KeypointCache(keypoints_dir) if keypoints_dir is not None else None
    if mode == "regions" and keypoints.keypoint_format != "coco17":
        raise ValueError(f"mode 'regions' draws MGRAN's maps, which read COCO-17 keypoints; the "
                         f"cache {keypoints_dir} holds '{keypoints.keypoint_format}'")
    if mode == "parts":
        from reid_ext.data.parts import get_part_scheme

        scheme = get_part_scheme(parts_scheme or
                                 ("atrw" if keypoints.keypoint_format == "atrw15" else "glad"))
    counts = {"images": 0, "missing_mask": 0, "missing_keypoints": 0}
    cells = []
    for path in impaths:
        rel = image_relpath(path, root)
        image = read_image(path)
        height, width = image.shape[:2]
        uses_mask = mode in ("masks", "regions")
        mask = masks.get(rel) if masks is not None and uses_mask else None
        points = keypoints.get(rel) if keypoints is not None else None
        missing = (uses_mask and mask is None) or (mode != "masks" and points is None)
        counts["missing_mask"] += int(uses_mask and mask is None)
        counts["missing_keypoints"] += int(keypoints is not None and points is None)
        counts["images"] += 1
        if mode == "regions":
            cells += mgran_region_cells(image, mask, points, scale, missing)
            continue
        parts = None
        if mode == "parts" and points is not None:
            from reid_ext.data.parts import keypoints_to_parts

            parts = np.asarray(keypoints_to_parts(points, height, width,
                                                  keypoints.keypoint_format, scheme.name))
        cells.append(render_cell(image, scale, mask=mask, points=points,
                                 skeleton=keypoints.keypoint_format if keypoints else None,
                                 parts=parts, missing=missing))
    if not cells:
        raise ValueError("no images to draw")
    Path(out_png).parent.mkdir(parents=True, exist_ok=True)
    per_crop = len(cells) // counts["images"]  # 5 panels per crop in regions mode, else 1
    grid(cells, per_crop if per_crop > 1 else columns).save(out_png)
    return counts


def main(argv: list[str] | None = None) -> int:
    """``tools/visualize.py masks|keypoints|parts|regions --config-file C --out grid.png``."""
    import argparse
    import random
    import sys

    parser = argparse.ArgumentParser(description="Draw crops with their cached aux maps.")
    parser.add_argument("mode", choices=MODES,
                        help="regions: MGRAN's maps, a row per crop (needs masks and keypoints)")
    parser.add_argument("--config-file", help="training config (data.* and aux.*)")
    parser.add_argument("--dataset", help="dataset name (instead of a config)")
    parser.add_argument("--root", default=".", help="data root, with --dataset")
    parser.add_argument("--mask-dir", help="mask cache (default: aux.mask or the dataset's own)")
    parser.add_argument("--keypoints-dir", help="keypoint cache (default: aux.keypoints or the "
                                                 "dataset's own)")
    parser.add_argument("--parts-scheme", help="part scheme (default: aux.parts, else glad/atrw)")
    parser.add_argument("--num", type=int, default=32, help="crops to draw")
    parser.add_argument("--columns", type=int, default=8)
    parser.add_argument("--scale", type=float, default=2.0, help="crop magnification")
    parser.add_argument("--seed", type=int, default=0, help="which crops (random sample)")
    parser.add_argument("--out", default="aux_maps.png", help="PNG to write")
    args = parser.parse_args(argv)

    import reid_ext  # noqa: F401  (datasets)
    from reid_ext.preprocess.datasets import config_dataset_images, load_dataset_images

    aux = None
    if args.config_file:
        from reid_ext.config import load_config

        aux = load_config(args.config_file).aux
        group = config_dataset_images(args.config_file)[0]
    elif args.dataset:
        group = load_dataset_images(args.dataset, args.root)
    else:
        print("error: pass --config-file or --dataset", file=sys.stderr)
        return 2

    def pick(given: str | None, configured: str, kind: str) -> str | None:
        if given:
            return given
        if configured and configured != "auto":
            return configured
        return group.aux_dirs.get(kind)

    mask_dir = pick(args.mask_dir, aux.mask if aux else "", "mask")
    keypoints_dir = pick(args.keypoints_dir, aux.keypoints if aux else "", "keypoints")
    if args.mode == "masks" and not args.keypoints_dir:
        keypoints_dir = None  # masks alone unless a keypoint cache is asked for explicitly
    chosen = sorted(random.Random(args.seed).sample(group.impaths,
                                                    min(args.num, len(group.impaths))))
    try:
        counts = render_sheet(args.mode, group.root, chosen, args.out, mask_dir=mask_dir,
                              keypoints_dir=keypoints_dir,
                              parts_scheme=args.parts_scheme or (aux.parts if aux else None),
                              columns=args.columns, scale=args.scale)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {counts['images']} crops of {group.name}; missing masks "
          f"{counts['missing_mask']}, missing keypoints {counts['missing_keypoints']} "
          f"(red frames)")
    return 0
