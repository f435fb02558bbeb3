#!/usr/bin/env bash
# Optional back-ends for CI, so that their opt-in tests run instead of skipping.
#   bash .ci/install_optional.sh detectron2   # into the active venv, from ../shared/wheels
#   bash .ci/install_optional.sh mediapipe    # its own venv .venv-mp (protobuf<5, numpy<2),
#                                             # then the mediapipe tests in it
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
  *)
    echo "usage: $0 detectron2|mediapipe" >&2
    exit 2
    ;;
esac
