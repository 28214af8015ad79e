"""The contracts every backend and box source implements.

A backend is one file under ``srum_core/backends`` that satisfies :class:`UnifiedModel`; the round engine,
the CLI and the UI talk to backends only through this protocol. Besides generating, judging and training, a
backend describes the world it was made for — its prompt categories, its named prompt sets, example prompts,
and an independent referee if one exists — so no engine or UI module needs to know which backend it talks to.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .config import GenerationConfig, JudgeConfig
from .types import GlobalJudgement, PromptItem, RefereeVerdict, Region, RegionJudgement, Sample


@dataclass(frozen=True)
class ProgressEvent:
    """One progress report from a long-running engine call.

    ``stage`` names the step of the round (``generate``, ``propose``, ``judge``, ``train``, ``evaluate``, ...);
    ``step``/``total`` count work inside that stage; ``metrics`` holds numbers worth plotting live;
    ``preview`` an optional PIL image.
    """

    stage: str
    step: int
    total: int
    metrics: dict[str, float] = field(default_factory=dict)
    preview: Any = None
    message: str = ""


ProgressCallback = Callable[[ProgressEvent], None]


class Cancelled(Exception):
    """Raised by a long engine call when its ``cancel`` event is set; the caller restores the previous state."""


#: An independent referee: ``(image, prompt item) -> verdict``. A bare bool (or None: cannot judge) is accepted
#: where only pass/fail is needed, e.g. from a test's stand-in.
Referee = Callable[[Any, PromptItem], "RefereeVerdict | bool | None"]


@runtime_checkable
class UnifiedModel(Protocol):
    """A model that both generates images and judges them with its own understanding path.

    Shapes: images are PIL RGB images of ``image_size``; ``token_losses`` returns ``(B, N)`` with
    ``N = rows * cols`` of :meth:`token_grid`, row-major, aligned with :attr:`srum_core.types.RewardMap.token`.
    """

    name: str

    @property
    def image_size(self) -> tuple[int, int]:
        """``(width, height)`` of the images this backend generates."""
        ...

    @property
    def token_size(self) -> int:
        """Pixels covered by one generation token along each side (e.g. 16 for BAGEL, 16 for Janus-Pro 384²)."""
        ...

    def token_grid(self, width: int, height: int) -> tuple[int, int]:
        """``(rows, cols)`` of the generation token grid for an image of ``width`` x ``height`` pixels."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        config: GenerationConfig,
        callback: ProgressCallback | None = None,
    ) -> list[Sample]:
        """One image per (prompt, seed). Same prompt + seed + config gives the same image."""
        ...

    def judge_global(self, image: Any, prompt: str, config: JudgeConfig) -> GlobalJudgement:
        """The global layout score ``g`` in [-1, 1] for ``image`` against ``prompt``."""
        ...

    def judge_regions(
        self, image: Any, prompt: str, regions: Sequence[Region], config: JudgeConfig
    ) -> list[RegionJudgement]:
        """One judgement per region, in the same order as ``regions``."""
        ...

    def box_sources(self) -> dict[str, BoxSource]:
        """The box sources this backend offers, by name; the first is the default."""
        ...

    def token_losses(self, samples: Sequence[Sample], generator: Any = None) -> Any:
        """Per-token training loss ``e_i`` on the backend's own samples: a ``(B, N)`` tensor with grad.

        Flow backends: squared error of the velocity prediction per token at a sampled timestep.
        Autoregressive backends: per-token cross-entropy of the sampled codes (teacher forcing).
        """
        ...

    def trainable_module(self) -> Any:
        """The ``torch.nn.Module`` that training updates (LoRA is attached to it)."""
        ...

    def lora_target_modules(self) -> list[str] | str:
        """peft ``target_modules`` naming the layers LoRA adapts (generation path only where possible)."""
        ...

    # A backend may also offer ``export_adapter(directory)``: the attached adapter written in its own library's format
    # beside the peft files (called by srum_core.adapters.save_adapter; e.g. diffusers' pytorch_lora_weights).

    # The world the backend was made for. A backend may also offer ``prompt_objects(prompt) -> list[str]``: the
    # objects it knows that ``prompt`` names (none → region rewards have nothing to measure; global-only reward).

    def categories(self) -> tuple[str, ...]:
        """The prompt categories of the backend's prompt sets, in report order (evaluation reports per category)."""
        ...

    def prompt_sets(self) -> tuple[str, ...]:
        """Names of the backend's own prompt sets (e.g. a training and a held-out split); may be empty."""
        ...

    def prompts(self, set_name: str, categories: Sequence[str] | None, n: int, seed: int) -> list[PromptItem]:
        """``n`` prompts of the named set, shared out over ``categories`` as evenly as possible (None = the set's
        own mix), the same for the same arguments. Unknown set or category names raise ``ValueError`` naming
        the choices."""
        ...

    def example_prompts(self, seed: int = 0) -> list[tuple[str, str]]:
        """``(category, prompt)`` examples, one per category, that the backend handles well (the UI offers them)."""
        ...

    def referee(self) -> Referee | None:
        """An independent, non-learned checker of images against prompts, or None. It only measures: it never
        feeds a reward or a training step."""
        ...


@runtime_checkable
class BoxSource(Protocol):
    """Where regions come from: automatic proposals, grounding on the prompt's objects, or a user's boxes."""

    name: str
    #: ``"automatic"`` (class-agnostic, like SAM), ``"grounding"`` (finds the prompt's objects), ``"user"``.
    kind: str

    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        """Up to ``max_regions`` regions on ``image``, largest/most confident first."""
        ...


def generation_modes(backend: Any) -> tuple[str, ...]:
    """The generation modes a backend offers (its optional ``generation_modes``; ``("plain",)`` without one)."""
    return tuple(getattr(backend, "generation_modes", ("plain",)))


def check_generation_mode(backend: Any, mode: str | None) -> None:
    """Refuse a generation ``mode`` the backend does not offer, in one line (None: the backend's default)."""
    modes = generation_modes(backend)
    if mode is not None and mode not in modes:
        raise ValueError(f"mode {str(mode)[:40]!r}: backend {backend.name!r} generates in {', '.join(modes)} mode only")
