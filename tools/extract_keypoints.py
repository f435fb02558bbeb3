"""Extract keypoints for every image of a dataset into an aux-map cache.

    python tools/extract_keypoints.py --source torchvision --config-file configs/x.yaml \\
        --weights KeypointRCNN_ResNet50_FPN_Weights.DEFAULT --out /work/cache/x/keypoints

See ``--help`` and docs/aux_maps.md ("Extraction tools").
"""
import sys

from reid_ext.preprocess.cli import main

if __name__ == "__main__":
    sys.exit(main("keypoints"))
