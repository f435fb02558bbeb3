"""Benchmark models against each other: accuracy, cost and speed in one table and one plot.

``tools/benchmark.py`` is the command line; the pieces are small modules:
:mod:`~reid_ext.benchmarking.specs` (model specs and jobs), :mod:`~.measure` (parameters, FLOPs,
timings, memory), :mod:`~.worker` (one model in a child process), :mod:`~.report` (csv and
markdown), :mod:`~.plot` (accuracy against speed) and :mod:`~.suite` (the loop over models).
"""
from reid_ext.benchmarking.report import COLUMNS
from reid_ext.benchmarking.specs import Job, ModelSpec, parse_model_list, parse_model_spec
from reid_ext.benchmarking.suite import BenchmarkOptions, run_benchmark

__all__ = ["COLUMNS", "BenchmarkOptions", "Job", "ModelSpec", "parse_model_list",
           "parse_model_spec", "run_benchmark"]
