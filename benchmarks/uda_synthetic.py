"""Target mAP/R1 of multi-step pseudo-label refinement on the synthetic domain pair.

    python benchmarks/uda_synthetic.py --seeds 1 2 [--out results.json] [KEY VALUE ...]

Per seed (``train.seed``): ``configs/uda_synthetic.yaml`` as is (camera normalisation, outliers
dropped), which trains the source model and refines it; then, from that same source model
(``uda.source_checkpoint``), the run without camera normalisation and the run keeping outliers
as singleton identities; then the target-supervised upper bound (the same recipe and epochs as
the source model, trained on the target's labelled train split). Each run is
``tools/train_uda.py`` in a subprocess; rows come from its ``uda_log.json``. KEY VALUE pairs are
passed to every run (e.g. ``train.max_epoch 6``).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "uda_synthetic.yaml"


def run(save_dir: Path, opts: list[str]) -> list[dict]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "train_uda.py"), "--config-file",
                          str(CONFIG), "data.save_dir", str(save_dir), *opts], env=env,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"run {save_dir} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    print(f"  {save_dir.name}: {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads((save_dir / "uda_log.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work-dir", default="log/bench_uda_synthetic")
    parser.add_argument("--out", default="")
    parser.add_argument("opts", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    work = Path(args.work_dir).resolve()
    results: dict[str, dict[int, list[dict]]] = {}
    for seed in args.seeds:
        common = [*args.opts, "train.seed", str(seed)]
        print(f"seed {seed}", flush=True)
        base = work / f"s{seed}_camnorm_drop"
        results.setdefault("camnorm + drop", {})[seed] = run(base, common)
        source = str(base / "step0" / "model.pth")
        for name, extra in (("no camnorm + drop", ["uda.camera_norm", "False"]),
                            ("camnorm + singleton", ["uda.outliers", "singleton"])):
            tag = name.replace(" + ", "_").replace(" ", "")
            results.setdefault(name, {})[seed] = run(
                work / f"s{seed}_{tag}", [*common, "uda.source_checkpoint", source, *extra])
        results.setdefault("target-supervised", {})[seed] = run(
            work / f"s{seed}_supervised",
            # the source set stays a (second) target: the config's data.options name it
            [*common, "data.sources", "['synthetic_person_target']", "data.targets",
             "['synthetic_person_target', 'synthetic_person']", "uda.steps", "0"])
    print("\n| run | step | seed | clusters | outliers | NMI | ARI | mAP | R1 | mAP (cam-norm "
          "test) | R1 (cam-norm test) |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for name, by_seed in results.items():
        for seed, rows in by_seed.items():
            for r in rows:
                def f(key: str, pct: bool = True, r: dict = r) -> str:
                    v = r.get(key)
                    return "" if v is None else (f"{100 * v:.1f}" if pct else f"{v:.0f}")
                print(f"| {name} | {r['step']} | {seed} | {f('clusters', False)} | "
                      f"{f('outlier_fraction')} | {f('nmi')} | {f('ari')} | {f('mAP')} | "
                      f"{f('rank1')} | {f('mAP_camnorm')} | {f('rank1_camnorm')} |")
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
