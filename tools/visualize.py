"""Draw a grid of crops with their cached masks, skeletons, part regions or MGRAN's region maps.

    python tools/visualize.py masks --config-file configs/x.yaml --num 32 --out masks.png
    python tools/visualize.py parts --dataset synthetic_person --root reid-data --out parts.png
    python tools/visualize.py regions --config-file configs/mgran_col780.yaml --num 4 --out r.png
"""
import sys

from reid_ext.preprocess.visualize import main

if __name__ == "__main__":
    sys.exit(main())
