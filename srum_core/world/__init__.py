"""The synthetic compositional world of the embedded sandbox backend: vocabulary, renderer, prompt grammar,
train/validation split, and an independent, non-learned referee (its segmentation lives in
:mod:`srum_core.boxes.segmenter`).

Import the submodules directly (``from srum_core.world.render import render_spec``); nothing here loads at
import beyond numpy and Pillow.
"""
