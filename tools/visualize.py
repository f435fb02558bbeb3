"""Draw a grid of crops with their cached masks, skeletons or part regions.

    python tools/visualize.py masks --config-file configs/x.yaml --num 32 --out masks.png
    python tools/visualize.py parts --dataset synthetic_person --root reid-data --out parts.png
"""
import sys

from reid_ext.preprocess.visualize import main

if __name__ == "__main__":
    sys.exit(main())
