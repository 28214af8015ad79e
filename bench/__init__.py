"""Speed benchmarks, each printing ratios measured side by side in one run; run from the repository root with
``python -m bench.NAME --help`` (``bash bench/gpu_smoke.sh`` for the GPU smoke test). Research runs live in
``experiments/``; measured histories are in ``docs/benchmarks.md``.
"""
