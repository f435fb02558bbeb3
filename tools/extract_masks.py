"""Extract person masks for every image of a dataset into an aux-map cache.

    python tools/extract_masks.py --source grabcut --dataset col780 --root ../shared/data \\
        --out /work/cache/col780/masks_grabcut

See ``--help`` and docs/aux_maps.md ("Extraction tools").
"""
import sys

from reid_ext.preprocess.cli import main

if __name__ == "__main__":
    sys.exit(main("mask"))
