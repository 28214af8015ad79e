"""The one scoring path (SRUM_SPEC §1.3–1.6): propose regions → judge globally and per region → reward maps.

A round (image by image, split across processes), the Inspect and Compare tabs (through
:mod:`srum_core.facade`) and the ``score`` command all call these functions, so what the Inspect tab shows for an
image is exactly what a round trains on:

    propose_image_regions → (source name, list[Region])   the named box source (or typed boxes), at most
                                                          ``max_regions``; none when the prompt names no object
                                                          the backend knows
    judge_image           → RewardReport                  global judgement + one judgement per region, notices
    reward_maps           → dict[mode, RewardMap], errors every map mode that can be built, and why not the others
    training_maps         → list[RewardMap | None]        the round's map per report; None = global score unread
    score_image           = propose_image_regions + judge_image + reward_maps

Nothing here keeps state or writes files; the backend is the only thing called.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .boxes.user import USER_BOX_SOURCE, parse_user_boxes
from .config import MAP_MODES, JudgeConfig, RewardConfig
from .protocol import BoxSource, UnifiedModel
from .rewards import build_reward_map
from .types import Region, RewardMap, RewardReport

logger = logging.getLogger(__name__)

NOTICE_NO_OBJECTS = "no recognisable objects: global-only reward"
NOTICE_NO_GLOBAL = "the global judgement could not be read: this image would be left out of training"
NOTICE_G_MINUS_ONE = (
    "g = -1: the global factor (g+1)/2 is 0, so the released, signed, binary and global-only maps are 0 "
    "everywhere; local-only ignores g and sft is uniform by design"
)


def resolve_box_source(backend: UnifiedModel, name: str | None) -> tuple[str, BoxSource]:
    """``(name, source)``: the backend's box source called ``name``, or its first (the default) for None."""
    sources = backend.box_sources()
    if not sources:
        raise ValueError(f"backend {backend.name!r} offers no box source; choose box source 'user' and type boxes")
    name = name or next(iter(sources))
    if name not in sources:
        choices = ", ".join([*sources, USER_BOX_SOURCE])
        raise ValueError(f"box source {name!r} is unknown for backend {backend.name!r}; choose one of {choices}")
    return name, sources[name]


def recognisable_objects(backend: UnifiedModel, prompt: str) -> bool | None:
    """Whether ``prompt`` names any object the backend knows; None when the backend cannot tell.

    Answered by the backend's optional ``prompt_objects(prompt) -> list`` method. Region rewards measure relevance
    to the prompt's objects, so for a prompt that names none the reward falls back to the global score alone.
    """
    asks = getattr(backend, "prompt_objects", None)
    return bool(asks(prompt)) if callable(asks) else None


def propose_image_regions(
    backend: UnifiedModel,
    image: Any,
    prompt: str,
    judge: JudgeConfig,
    box_source: str | None = None,
    user_boxes: str | Sequence[Region] | None = None,
) -> tuple[str, list[Region]]:
    """``(source name used, regions)`` for ``image``: at most ``judge.max_regions``, from ``box_source`` (None =
    ``judge.box_source``, then the backend's default).

    ``box_source="user"`` takes ``user_boxes`` (text as :func:`srum_core.boxes.user.parse_user_boxes` reads it,
    or regions). Proposed (not typed) regions are dropped when the prompt names no object the backend knows
    (SRUM_SPEC §1.5, the no-regions case).
    """
    name = box_source or judge.box_source
    if name == USER_BOX_SOURCE:
        if user_boxes is None or isinstance(user_boxes, str):
            width, height = image.size
            regions = parse_user_boxes(user_boxes, width, height)
        else:
            regions = list(user_boxes)
        return USER_BOX_SOURCE, regions[: judge.max_regions]
    name, source = resolve_box_source(backend, name)
    regions = list(source.propose(image, prompt, max_regions=judge.max_regions))[: judge.max_regions]
    if regions and recognisable_objects(backend, prompt) is False:
        logger.info("prompt %r names no object the backend knows; dropping %d regions", prompt, len(regions))
        regions = []
    return name, regions


def judge_image(
    backend: UnifiedModel,
    image: Any,
    prompt: str,
    regions: Sequence[Region],
    judge: JudgeConfig,
    image_file: str | None = None,
) -> RewardReport:
    """The model's own global judgement of ``image`` and one judgement per region, as a reward report.

    Notices say when no region could be scored (global-only reward) and when the global score is unreadable
    (the image is then left out of training, SRUM_SPEC §1.4).
    """
    global_judgement = backend.judge_global(image, prompt, judge)
    region_judgements = backend.judge_regions(image, prompt, list(regions), judge) if regions else []
    if len(region_judgements) != len(regions):
        raise RuntimeError(
            f"backend {backend.name!r} returned {len(region_judgements)} region judgements for {len(regions)} regions; "
            "judge_regions must answer every region in order"
        )
    notices = []
    if not any(j.usable for j in region_judgements):
        notices.append(NOTICE_NO_OBJECTS)
    if not global_judgement.usable:
        notices.append(NOTICE_NO_GLOBAL)
    elif global_judgement.score is not None and global_judgement.score <= -1.0:
        notices.append(NOTICE_G_MINUS_ONE)  # every map scaled by (g+1)/2 is flat: say why
    width, height = image.size
    return RewardReport(
        prompt=prompt,
        width=width,
        height=height,
        global_judgement=global_judgement,
        regions=tuple(region_judgements),
        image_file=image_file,
        notices=tuple(notices),
    )


def reward_maps(
    report: RewardReport, token_size: int, grid: str = "bilinear", modes: Sequence[str] = MAP_MODES
) -> tuple[dict[str, RewardMap], dict[str, str]]:
    """The reward map of ``report`` in every mode of ``modes`` that can be built, and why the others could not
    (e.g. the global score was unreadable)."""
    maps: dict[str, RewardMap] = {}
    errors: dict[str, str] = {}
    for mode in modes:
        try:
            maps[mode] = build_reward_map(report, RewardConfig(mode=mode, grid=grid), token_size)
        except ValueError as err:  # MissingGlobalScore is a ValueError
            errors[mode] = str(err)
    return maps, errors


def training_maps(reports: Sequence[RewardReport], config: RewardConfig, token_size: int) -> list[RewardMap | None]:
    """The reward map of each report in the round's mode; None where the global judgement is unusable.

    The exclusion holds in every map mode — also ``local-only`` and ``sft``, which could do without ``g`` — so
    every ablation trains on the same images.
    """
    return [build_reward_map(r, config, token_size) if r.trainable else None for r in reports]


@dataclass(frozen=True)
class Scored:
    """One image scored: the box source used, its regions, the report, and the map in every mode that could be
    built (pixel ``(H, W)`` and token ``(H/t, W/t)`` views) with why the others could not."""

    box_source: str
    regions: tuple[Region, ...]
    report: RewardReport
    maps: dict[str, RewardMap]
    map_errors: dict[str, str] = field(default_factory=dict)


def score_image(
    backend: UnifiedModel,
    image: Any,
    prompt: str,
    judge: JudgeConfig,
    box_source: str | None = None,
    user_boxes: str | Sequence[Region] | None = None,
    grid: str = "bilinear",
    image_file: str | None = None,
) -> Scored:
    """Propose regions on ``image``, judge them and the whole image, and build every reward map."""
    source, regions = propose_image_regions(backend, image, prompt, judge, box_source, user_boxes)
    report = judge_image(backend, image, prompt, regions, judge, image_file)
    maps, errors = reward_maps(report, backend.token_size, grid)
    return Scored(box_source=source, regions=tuple(regions), report=report, maps=maps, map_errors=errors)
