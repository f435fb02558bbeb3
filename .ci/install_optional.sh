#!/usr/bin/env bash
# Optional back-ends for CI, so that their opt-in tests run instead of skipping.
#   bash .ci/install_optional.sh detectron2   # into the active venv, from ../shared/wheels
#   bash .ci/install_optional.sh mediapipe    # its own venv .venv-mp (protobuf<5, numpy<2),
#                                             # then the mediapipe tests in it
#   bash .ci/install_optional.sh pose         # mmpose 1.3.2 into the active venv (recipe)
set -euo pipefail
cd "$(dirname "$0")/.."

case "${1:-}" in
  detectron2)
    # detectron2 is not on PyPI; this wheel was built from its source for torch 2.14.1/py3.11.
    wheel=$(ls ../shared/wheels/detectron2-*.whl 2>/dev/null | head -n 1 || true)
    if [ -z "$wheel" ]; then
      echo "detectron2 wheel not found under ../shared/wheels: its tests will skip"
      exit 0
    fi
    pip install -q "$wheel" -c constraints.txt
    ;;
  mediapipe)
    python3 -m venv .venv-mp
    .venv-mp/bin/python -m pip install -q --upgrade pip
    .venv-mp/bin/pip install -q -e ".[mediapipe,dev]" -c constraints-mediapipe.txt
    .venv-mp/bin/python -m pytest -q -p no:cacheprovider tests/test_sources_mediapipe.py
    ;;
  pose)
    # mmpose 1.3.2 on numpy 2: its declared deps do not resolve (chumpy, xtcocotools' numpy-1
    # ABI, pkg_resources gone from setuptools>=81), and it imports mmdet and mmcv.ops eagerly;
    # reid_ext stands in for mmcv.ops (reid_ext/preprocess/mmpose_compat.py).
    pip install -q -e ".[pose]" -c constraints.txt
    pip install -q --no-deps "mmpose==1.3.2" "mmdet==3.3.0"
    pip install -q --no-deps --no-build-isolation --no-binary xtcocotools xtcocotools
    ;;
  *)
    echo "usage: $0 detectron2|mediapipe|pose" >&2
    exit 2
    ;;
esac
