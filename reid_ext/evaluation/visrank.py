"""Ranked-list pictures with one file per query, whatever the image names.

torchreid's ``visualize_ranked_results`` names each picture after the query image's basename,
so datasets whose file names repeat across identity folders (``image_folder``:
``<pid>/<cam>_<n>.jpg``) overwrite each other (2 files for 12 queries). Here the host function
draws each query alone into a scratch folder and the picture is moved to
``<index>_<pid>_c<camid>_<basename>.jpg``.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reid_ext import host


def query_picture_name(index: int, item: Sequence) -> str:
    """Unique file name of query ``index``'s ranked-list picture."""
    path, pid, camid = item[:3]
    path = path[0] if isinstance(path, (tuple, list)) else path
    return f"{index:05d}_{pid}_c{camid}_{Path(path).stem}.jpg"


def visualize_ranked_results(distmat: np.ndarray, dataset: tuple[list, list], data_type: str,
                             width: int, height: int, save_dir: str | os.PathLike,
                             topk: int = 10) -> list[Path]:
    """Draw every query's top-``topk`` gallery matches; return the picture paths."""
    query, gallery = dataset
    if distmat.shape != (len(query), len(gallery)):
        raise ValueError(f"distmat is {distmat.shape} but there are {len(query)} queries and "
                         f"{len(gallery)} gallery items")
    save_dir = Path(save_dir)
    save_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory(dir=save_dir) as scratch:
        for index, item in enumerate(query):
            with contextlib.redirect_stdout(io.StringIO()):
                host.utils.visualize_ranked_results(
                    distmat[index:index + 1], ([item], gallery), data_type, width=width,
                    height=height, save_dir=scratch, topk=topk)
            target = save_dir / query_picture_name(index, item)
            for produced in Path(scratch).iterdir():
                shutil.move(str(produced), target)
            written.append(target)
    print(f"Ranked lists of {len(query)} queries written to '{save_dir}'")
    return written
