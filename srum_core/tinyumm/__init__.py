"""TinyUMM: the embedded sandbox unified model (one shared transformer trunk that draws and understands).

Submodules are imported on demand (``from srum_core.tinyumm.model import TinyUMM``); importing this package
loads nothing heavy. Train with ``python -m srum_core.tinyumm.train --out assets/tiny-umm``; use it through
:func:`srum_core.backends.sandbox.load_sandbox`.
"""
