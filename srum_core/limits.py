"""Limits on inputs whose cost grows with their size, in one place.

Each limit is checked before any work starts, and the error names the limit and how to stay under it. They
guard a shared app (one visitor's input must not hold the engine or the CPU for everyone) and keep the CLI
from starting work it cannot finish. ``docs/limits.md`` lists them with what each one bounds.
"""

from __future__ import annotations

#: Longest prompt accepted (typed, read from a prompt file, or found in an imported record). Far above any
#: real T2I prompt; it bounds tokenisation and the text echoed back.
MAX_PROMPT_CHARS = 2000
#: Seeds are drawn from and checked against ``[0, MAX_SEED]`` (fits every generator's 32-bit seed).
MAX_SEED = 2**31 - 1
#: Longest judge question template, and most fields (``{prompt}``, ...) one template may use: together they
#: bound the length of the question the judge reads (template + fields x the longest prompt).
MAX_TEMPLATE_CHARS = 2000
MAX_TEMPLATE_FIELDS = 8
#: Most regions one SRUM record may list (the engine itself judges at most 64 per image; SRUM keeps 10).
MAX_RECORD_REGIONS = 64
#: Largest image side a record may declare (``[0, 0, W, H]``) or ``--size`` may give: a reward map is
#: ``W x H`` floats per record. SRUM's images are 1024 px.
MAX_IMAGE_SIDE = 4096
#: Largest SRUM JSONL (or prompt file) the Workbench reads in one request, uploaded or from a run folder.
#: The CLI reads files of any size (its cost is linear in the file).
MAX_UPLOAD_BYTES = 20 * 2**20
#: Longest side the Workbench draws a reward map at; a larger map is shown averaged over blocks.
MAX_PLOT_SIDE = 512


def mib(n_bytes: int) -> str:
    """``n_bytes`` in MiB with two decimals, e.g. ``'20.00 MiB'``."""
    return f"{n_bytes / 2**20:.2f} MiB"
