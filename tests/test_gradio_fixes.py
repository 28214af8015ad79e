"""gradio's cached output images are written atomically: a reader never sees a partial file, even while other
threads write the same image (identical outputs of concurrent visitors share one cache path)."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from workbench import gradio_fixes


def test_concurrent_writes_of_one_image_never_show_a_partial_file(tmp_path):
    from gradio import processing_utils

    gradio_fixes.install()
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8))
    target = processing_utils.save_pil_to_cache(image, str(tmp_path), format="png")
    expected = open(target, "rb").read()
    stop, bad = threading.Event(), []

    def write() -> None:
        while not stop.is_set():
            assert processing_utils.save_pil_to_cache(image, str(tmp_path), format="png") == target

    def read() -> None:
        for _ in range(300):
            if open(target, "rb").read() != expected:
                bad.append("partial")

    writers = [threading.Thread(target=write) for _ in range(4)]
    for thread in writers:
        thread.start()
    read()
    stop.set()
    for thread in writers:
        thread.join()
    assert not bad
    assert sorted(p.name for p in (tmp_path).rglob("*") if p.is_file()) == ["image.png"]  # no staging file left
