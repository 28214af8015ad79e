"""SRUM Workbench: the Gradio UI on top of :mod:`srum_core` (Inspect, Train, Compare, Runs).

``build_demo(engine)`` lives in :mod:`workbench.app`; importing this package builds nothing and loads no weights.
"""
