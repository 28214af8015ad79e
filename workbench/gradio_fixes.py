"""A workaround for a race in gradio 6.31's output cache, installed by :func:`workbench.app.build_demo`.

gradio stores an output image under a name made from its content (``CACHE/<hash>/image.png``) and writes it in
place (``Path.write_bytes``: truncate, then write). When two visitors get the same image at the same time —
every visitor opening the page gets the same example, and the same prompt and seed give the same image — one
request can serve the file while the other has just truncated it: the browser or client receives an empty or
partial image ("peer closed connection without sending complete message body", measured by ``bench/load.py``
with 8 visitors). gradio's own ``save_file_to_cache`` already writes through a temporary file and a rename; this
module makes ``save_pil_to_cache`` do the same. The content-addressed name means the result is identical.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

_INSTALLED = False


def _save_pil_to_cache(img: Any, cache_dir: str, name: str = "image", format: str = "webp") -> str:  # noqa: A002
    from gradio import processing_utils

    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    target = (folder / f"{name}.{format}").resolve()
    if target.exists():
        try:
            os.utime(target)  # gradio's delete_cache ages files by their time: a reused copy is fresh again
        except OSError:
            pass
        return str(target)
    fd, staging = tempfile.mkstemp(dir=folder, prefix=f".{name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return str(target)


def install() -> None:
    """Make gradio write cached output images atomically (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from gradio import processing_utils

    processing_utils.save_pil_to_cache = _save_pil_to_cache
    _INSTALLED = True
