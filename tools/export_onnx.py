"""Export a trained model's embedding network to ONNX and check it against onnxruntime.

    python tools/export_onnx.py --config-file configs/quickstart.yaml \
        --weights log/quickstart/model/model.pth.tar-10 [--out model.onnx] [KEY VALUE ...]

The graph takes ``image`` [B,3,H,W] (H, W = data.height, data.width) and, for models that
declare them, the aux maps as named inputs (``mask``, ``keypoints``, ``parts``); B is dynamic.
The max absolute difference between torch and onnxruntime on a fresh batch is printed; the
tool fails (exit 1) when it exceeds --atol. Needs ``pip install 'reid-ext[export]'``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import reid_ext  # noqa: F401  (registers models, datasets, samplers, losses)
from reid_ext.checkpoint import WeightsMismatchError, load_matching_weights, load_state_dict_file
from reid_ext.config import ConfigError, load_config
from reid_ext.export import MissingExportBackendError, export_onnx, parity
from reid_ext.models.factory import build_model


def num_classes_of(state: dict) -> int:
    """The identity count of a checkpoint's classifier (1 when it has none)."""
    for key, value in state.items():
        if key.endswith("classifier.weight") and value.ndim == 2:
            return int(value.shape[0])
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="yaml config used for training")
    parser.add_argument("--weights", required=True, help="checkpoint to export")
    parser.add_argument("--out", default="", help="output .onnx (default: next to --weights)")
    parser.add_argument("--atol", type=float, default=1e-3, help="parity tolerance")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file or None,
                          [*args.opts, "test.evaluate", "True", "model.pretrained", "False"])
        state = load_state_dict_file(args.weights)
        model = build_model(cfg.model.name, num_classes=num_classes_of(state),
                            pretrained=False, **dict(cfg.model.kwargs))
        load_matching_weights(model, args.weights, model_name=cfg.model.name)
        out = Path(args.out) if args.out else Path(args.weights).with_suffix(".onnx")
        fmt = cfg.aux.keypoint_format or None
        result = export_onnx(model, out, cfg.data.height, cfg.data.width, keypoint_format=fmt,
                             opset=args.opset)
        diff = parity(model, out, cfg.data.height, cfg.data.width, keypoint_format=fmt)
    except (ConfigError, WeightsMismatchError, FileNotFoundError,
            MissingExportBackendError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    print(f'Exported "{result.path}" (inputs {result.input_names}, output embedding, dynamic '
          f"batch axis)")
    print(f"onnxruntime parity: max abs diff {diff:.3g} (atol {args.atol:g})")
    return 0 if diff <= args.atol else 1


if __name__ == "__main__":
    sys.exit(main())
