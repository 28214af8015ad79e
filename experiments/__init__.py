"""Research runs on the embedded sandbox model: does self-rewarding help, and how sure are we?

Each module is one experiment, run from the repository root with ``python -m experiments.NAME --help``:

- ``srum_table`` — the SRUM result: base, SFT, SRUM, every ablation and the controls (oracle judge, perfect
  renders, gated), paired on the same evaluation items, with bootstrap confidence intervals;
- ``sandbox_model`` — the embedded model's drawing (plain and think mode) and judging quality, by the referee;
- ``sweep_sandbox`` — train several embedded-model variants side by side (a GPU machine), then measure each;
- ``gate`` — precision and recall of reward gates on a finished round's images.

They share :mod:`experiments.common`. Results and their history are in ``docs/results.md``; speed benchmarks
live in ``bench/``. Unlike the engine, experiments study the sandbox's world itself, so they may import it.
"""
