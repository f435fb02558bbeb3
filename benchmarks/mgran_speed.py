"""Inference speed of MGRAN (fast and paper mode) against torchreid's stock ResNet-50.

    PYTHONPATH=. python benchmarks/mgran_speed.py [--batch-sizes 32 1] [--repeats 3]

All models are built in one process from random weights and timed round-robin (each repeat
times every model once, so drift of a shared machine hits all of them alike) at 256x128 in
eval mode under ``torch.no_grad``. MGRAN's time includes building its region maps from the mask
and keypoints (done inside the model). Prints a markdown table: seconds per batch (median),
images/s, time per image relative to stock resnet50, and FLOPs per image. The target of
issue 11: fast mode at most 1.3x stock resnet50's time per image.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

import reid_ext  # noqa: F401  (registers mgran)
from reid_ext import host
from reid_ext.benchmarking.environment import collect_environment
from reid_ext.benchmarking.measure import count_flops
from reid_ext.registry import MODELS

HEIGHT, WIDTH, NUM_CLASSES = 256, 128, 751


def person_batch(size: int) -> dict[str, torch.Tensor]:
    """Random images with a centred person mask and upright COCO-17 keypoints (256x128)."""
    gen = torch.Generator().manual_seed(0)
    img = torch.randn(size, 3, HEIGHT, WIDTH, generator=gen)
    mask = torch.zeros(size, 1, HEIGHT, WIDTH)
    mask[:, :, 16:248, 24:104] = 1.0
    ys = torch.tensor([30, 26, 26, 30, 30, 64, 64, 104, 104, 136, 136, 144, 144, 188, 188, 232,
                       232.])
    xs = torch.tensor([64, 60, 68, 56, 72, 40, 88, 36, 92, 36, 92, 48, 80, 48, 80, 48, 80.])
    kp = torch.stack([xs, ys, torch.ones(17)], -1).expand(size, -1, -1).clone()
    return {"img": img, "mask": mask, "keypoints": kp}


def models() -> dict[str, tuple[torch.nn.Module, bool]]:
    """name -> (model in eval mode, takes aux maps)."""
    stock = host.get_host().model_factory()["resnet50"](
        num_classes=NUM_CLASSES, loss="softmax", pretrained=False, use_gpu=False)
    table = {"torchreid resnet50 (stock)": (stock, False)}
    for mode in ("fast", "paper"):
        table[f"mgran {mode}"] = (MODELS.build("mgran", num_classes=NUM_CLASSES,
                                               pretrained=False, mode=mode), True)
    table["mgran fast, last_stride 1"] = (
        MODELS.build("mgran", num_classes=NUM_CLASSES, pretrained=False, mode="fast",
                     last_stride=1), True)
    return {name: (model.eval(), aux) for name, (model, aux) in table.items()}


def call(model: torch.nn.Module, aux: bool, batch: dict[str, torch.Tensor]
         ) -> Callable[[], torch.Tensor]:
    if aux:
        return lambda: model(batch["img"], mask=batch["mask"], keypoints=batch["keypoints"])
    return lambda: model(batch["img"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 1])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args()
    env = collect_environment(torch.device("cpu"))
    print(f"device {env['device']}, torch {env['torch']}, {env['torch_threads']} threads")
    table = models()
    flops = {name: count_flops(call(m, aux, person_batch(1))) for name, (m, aux) in table.items()}
    stock = next(iter(table))
    for size in args.batch_sizes:
        batch = person_batch(size)
        fns = {name: call(m, aux, batch) for name, (m, aux) in table.items()}
        times: dict[str, list[float]] = {name: [] for name in fns}
        with torch.no_grad():
            for _ in range(args.warmup):
                for fn in fns.values():
                    fn()
            for _ in range(args.repeats):
                for name, fn in fns.items():
                    start = time.perf_counter()
                    fn()
                    times[name].append(time.perf_counter() - start)
        median = {name: statistics.median(t) for name, t in times.items()}
        print(f"\n| batch {size}, {HEIGHT}x{WIDTH} | s/batch (median of {args.repeats}) | img/s "
              f"| time/img vs stock resnet50 | GFLOPs/img |")
        print("|---|---|---|---|---|")
        for name, seconds in median.items():
            print(f"| {name} | {seconds:.3f} | {size / seconds:.1f} | "
                  f"{seconds / median[stock]:.2f}x | {flops[name] / 1e9:.2f} |")


if __name__ == "__main__":
    main()
