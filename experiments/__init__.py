"""Research runs on the embedded sandbox model: does self-rewarding help, and why (not)?

Each module is one experiment, run from the repository root with ``python -m experiments.NAME --help``:

- ``rounds`` — SRUM rounds vs SFT vs the ablations over seeds, measured by the world's referee;
- ``focused`` — one prompt at a time: SRUM vs SFT vs gated vs perfect data, on new seeds of that prompt;
- ``gate`` — precision and recall of reward gates on a finished round's images;
- ``sandbox_quality`` — the embedded model's drawing and judging quality (and its model card's numbers);
- ``sweep_train`` — short training proxies of the embedded model side by side, each measured.

They share :mod:`experiments.common`. Results and their history are in ``docs/results.md``; speed benchmarks
live in ``bench/``. Unlike the engine, experiments study the sandbox's world itself, so they may import it.
"""
