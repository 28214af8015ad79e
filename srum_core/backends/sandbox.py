"""The ``sandbox`` backend: the embedded TinyUMM v2, a miniature of BAGEL's mixture-of-transformers.

Implements :class:`srum_core.protocol.UnifiedModel` on 64×64 images of the synthetic world:

- ``generate``: rectified-flow Euler sampling with classifier-free guidance, in ``plain`` mode (the prompt alone)
  or ``think`` mode (the understanding expert first writes a plan of the scene — each object's slot, size,
  texture, colour and shape — and the generation expert draws from prompt + plan, as BAGEL draws after its
  ``<think>`` text). Noise per image from its own seeded CPU generator, the plan from another, the model run on
  fixed-size chunks, so an image depends only on (prompt, seed, settings). ``Sample.settings`` records ``mode``
  and, in think mode, ``plan`` (the think text) and ``plan_objects``; ``Sample.payload`` holds the ``(64, 192)``
  pixel-patch tokens of the saved (uint8) image, so a sample re-read from disk trains exactly like a fresh one.
- ``judge_global``: ``g = 2p - 1`` with ``p`` the learned ``<ask>`` head's P(yes) on the understanding expert
  (``global_judge = "learned"``, the default). The reason is assembled from the model's own predictions: what
  its per-patch heads see where, and its verdict. ``"grounded"`` (optional, for comparison) multiplies ``p`` by
  ``FAILED_CHECK_FACTOR`` per failed hand-written check of those findings against the parsed prompt.
- ``judge_regions``: every region at once, as learned region queries on the full image (a box is given to the
  understanding expert as its coordinates and the patches under it, whatever ``region_view`` says): P(the object
  in the box is one the prompt asks for), and the object's name from the region's attribute heads.
- ``box_sources``: the class-agnostic ``segmenter`` (the SAM stand-in, default) and ``self-grounding``
  (connected components of the model's own per-patch heads).
- ``token_losses``: per-token velocity squared error of the generation expert, conditioned on the short prompt
  alone, ``(B, 64)``. ``train_part`` picks what a round trains: ``gen`` (the generation expert; the judge and the
  planner stay bit-identical) or ``all``.

Nothing loads at import; :func:`load_sandbox` caches weights per (path, device) for the process.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import TRAIN_PARTS, GenerationConfig, JudgeConfig
from ..protocol import ProgressCallback, ProgressEvent
from ..templates import fill_template
from ..types import GlobalJudgement, PromptItem, RefereeVerdict, Region, RegionJudgement, Sample

logger = logging.getLogger(__name__)

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "assets" / "tiny-umm"
#: Images per model call when sampling. Fixed (not GenerationConfig.batch_size) so results never depend on
#: how prompts are batched.
SAMPLING_CHUNK = 8
#: A patch belongs to an object for self-grounding when P(object) exceeds this.
OBJECT_THRESHOLD = 0.5

_CACHE: dict[tuple[str, str], tuple[Any, Any]] = {}


def load_sandbox(path: str | Path | None = None, device: str = "auto") -> SandboxBackend:
    """The sandbox backend with weights from ``path`` (default: the shipped ``assets/tiny-umm``)."""
    from ..device import resolve_device

    folder = Path(path) if path is not None else DEFAULT_WEIGHTS
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no TinyUMM weights in {folder} (config.json missing); train them with "
            f"`python -m srum_core.tinyumm.train --out {folder}` or pass the folder that holds them"
        )
    import json

    version = json.loads((folder / "config.json").read_text()).get("version", 1)
    if version != 2:
        raise ValueError(
            f"{folder} holds TinyUMM v{version} weights; this backend runs v2 (the mixture-of-transformers model "
            f"with a think mode); retrain with `python -m srum_core.tinyumm.train --out {folder}`"
        )
    dev = resolve_device(device)
    key = (str(folder.resolve()), str(dev))
    if key not in _CACHE:
        from ..tinyumm.model import TinyUMM
        from ..tinyumm.tokenizer import WordTokenizer

        model = TinyUMM.from_pretrained(str(folder)).to(dev).eval().requires_grad_(False)
        tokenizer = WordTokenizer(model.config.vocab, model.config.max_text_len)
        _CACHE[key] = (model, tokenizer)
        logger.info("loaded TinyUMM from %s on %s", folder, dev)
    model, tokenizer = _CACHE[key]
    return SandboxBackend(model, tokenizer, source=str(folder))


@dataclass(frozen=True)
class PatchReading:
    """What the understanding expert reads from one image given a prompt.

    ``p_yes``: P(image matches prompt); ``object``: ``(8, 8)`` P(object) per patch; ``color``/``shape``/
    ``texture``/``size``: ``(8, 8, C)`` class probabilities per patch (rows top to bottom).
    """

    p_yes: float
    object: np.ndarray
    color: np.ndarray
    shape: np.ndarray
    texture: np.ndarray
    size: np.ndarray | None = None


@dataclass(frozen=True)
class Grounded:
    """One object the model found on its own: label words, pixel box, confidence."""

    color: str
    shape: str
    texture: str
    box: tuple[int, int, int, int]
    confidence: float
    size: str | None = None

    @property
    def name(self) -> str:
        words = ([self.size] if self.size else []) + ([self.texture] if self.texture != "solid" else [])
        return " ".join(words + [self.color, self.shape])


def _where(box: tuple[int, int, int, int], size: int) -> str:
    cx, cy = (box[0] + box[2]) / 2 / size, (box[1] + box[3]) / 2 / size
    horiz = "left" if cx < 0.4 else "right" if cx > 0.6 else "centre"
    vert = "top" if cy < 0.4 else "bottom" if cy > 0.6 else "middle"
    return f"{vert} {horiz}" if (horiz, vert) != ("centre", "middle") else "centre"


#: Each failed check on the model's own findings multiplies P(yes) by this in the grounded global judge.
FAILED_CHECK_FACTOR = 0.15
GLOBAL_JUDGES = ("learned", "grounded")


def _wanted(found: Grounded, obj) -> bool:
    return found.shape == obj.shape and (obj.color is None or found.color == obj.color)


def grounded_checks(found: Sequence[Grounded], spec) -> dict[str, bool]:
    """The prompt's demands checked against the model's own findings (its self-grounding list).

    Per requested object: the count of found objects of that colour and shape equals the count asked for, and
    their texture and size are the ones asked for (if any; size only when the model predicts it); the relation
    (if any) holds between the box centres of every subject/object pair (the offset along the relation's axis is
    positive and larger than across it); nothing was found that the prompt does not ask for.
    Pure: ``found`` and a :class:`~srum_core.world.spec.PromptSpec` in, ``{check: passed}`` out.
    """
    checks: dict[str, bool] = {}
    groups = []
    used: set[int] = set()
    for obj in spec.objects:
        idx = [i for i, f in enumerate(found) if _wanted(f, obj)]
        used.update(idx)
        group = [found[i] for i in idx]
        groups.append(group)
        checks[f"{obj.phrase} (found {len(group)})"] = len(group) == obj.count
        if obj.texture is not None:
            checks[f"{obj.texture} {obj.phrase}"] = bool(group) and all(f.texture == obj.texture for f in group)
        if obj.size is not None and group and all(f.size is not None for f in group):
            checks[f"size of {obj.phrase}"] = all(f.size == obj.size for f in group)
    if spec.relation is not None:
        s_i, rel, o_i = spec.relation
        ok = bool(groups[s_i]) and bool(groups[o_i])
        for a in groups[s_i]:
            for b in groups[o_i]:
                ax, ay = (a.box[0] + a.box[2]) / 2, (a.box[1] + a.box[3]) / 2
                bx, by = (b.box[0] + b.box[2]) / 2, (b.box[1] + b.box[3]) / 2
                along, across = {
                    "left of": (bx - ax, by - ay), "right of": (ax - bx, by - ay),
                    "above": (by - ay, bx - ax), "below": (ay - by, bx - ax),
                }[rel]
                ok = ok and along > 0 and along > abs(across)
        checks[f"{spec.objects[s_i].phrase} {rel} {spec.objects[o_i].phrase}"] = ok
    extra = [f.name for i, f in enumerate(found) if i not in used]
    checks["nothing else" + (f" (also {', '.join(extra)})" if extra else "")] = not extra
    return checks


class SelfGrounding:
    """Boxes from the model's own per-patch heads: patches with P(object) > 0.5, grouped into 4-connected
    components of the same (colour, shape) argmax label; each component's patch-aligned box, most confident
    first. ``kind = "grounding"``: every box carries the label the model sees there."""

    name = "self-grounding"
    kind = "grounding"

    def __init__(self, backend: SandboxBackend):
        self._backend = backend

    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        found = self._backend.ground(image, prompt)[:max_regions]
        return [Region(box=g.box, source=self.name, label=g.name, confidence=g.confidence) for g in found]


class WorldReferee:
    """The world's independent, non-learned referee (:func:`srum_core.world.referee.verify`) behind the
    :data:`~srum_core.protocol.Referee` contract: it measures drawings and never feeds a reward."""

    name = "srum_core.world.referee.verify"

    def __call__(self, image: Any, item: PromptItem) -> RefereeVerdict:
        from ..world.prompts import parse_prompt
        from ..world.referee import verify
        from ..world.spec import PromptSpec

        spec = PromptSpec.from_dict(item.spec) if item.spec is not None else parse_prompt(item.text)
        if spec is None:
            return RefereeVerdict(
                passed=None,
                notes="the prompt is outside the sandbox world's grammar (see srum_core.world.prompts); not judged",
            )
        verdict = verify(image, spec)
        return RefereeVerdict(
            passed=bool(verdict.passed),
            category=spec.category,
            checks=dict(verdict.checks),
            notes=verdict.notes,
            details={"detected": [d.to_dict() for d in verdict.detections]},
        )


class SandboxBackend:
    """TinyUMM v2 behind the :class:`~srum_core.protocol.UnifiedModel` contract (see the module docstring)."""

    name = "sandbox"
    generation_modes = ("plain", "think")
    #: The round recipe the Train tab starts from (``srum_core.config.PRESETS``): the measured SRUM result's.
    default_preset = "sandbox-srum"
    #: The measured SRUM result on this model (``python -m experiments.srum_table`` writes it), shown in Runs.
    measured_result = Path(__file__).resolve().parents[2] / "docs" / "results" / "sandbox_srum.json"
    #: The mode of a generation config that names none (a round resolves None to think).
    default_mode = "plain"
    train_parts = TRAIN_PARTS

    def __init__(self, model, tokenizer, source: str = "memory"):
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        #: Timestep shift and prompt dropout used by :meth:`token_losses` (a trainer may set them).
        self.timestep_shift: float = float(getattr(model.config, "flow_shift", 1.0))
        self.cond_dropout: float = 0.1
        #: How :meth:`judge_global` decides: ``"learned"`` (the ``<ask>`` head) or ``"grounded"`` (see above).
        self.global_judge: str = "learned"
        self._train_part = "gen"

    # ----------------------------------------------------------------------------------------------- set-up
    @classmethod
    def from_random(cls, seed: int, tiny: bool = True) -> SandboxBackend:
        """Randomly initialised weights (tests): ``tiny`` = a 2-layer, d=32 model; else the shipped size."""
        from ..tinyumm.train import TINY, TrainRunConfig, build_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, tokenizer = build_model(TINY if tiny else TrainRunConfig())
        return cls(model.eval().requires_grad_(False), tokenizer, source=f"random(seed={seed}, tiny={tiny})")

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def image_size(self) -> tuple[int, int]:
        s = int(self.model.config.image_size)
        return (s, s)

    @property
    def token_size(self) -> int:
        return int(self.model.config.patch_size)

    @property
    def _dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def token_grid(self, width: int, height: int) -> tuple[int, int]:
        if (width, height) != self.image_size:
            raise ValueError(f"the sandbox model works on {self.image_size[0]}x{self.image_size[1]} images, got {width}x{height}")
        return (height // self.token_size, width // self.token_size)

    @property
    def train_part(self) -> str:
        return self._train_part

    def set_train_part(self, part: str) -> None:
        """Choose what :meth:`trainable_module` returns: ``gen`` (the generation expert) or ``all``. An adapter on
        the other part is taken off first and the base model restored (its weights are dropped, as when a round
        attaches an adapter of another shape; a round refuses to *resume* a run of the other part)."""
        if part not in TRAIN_PARTS:
            raise ValueError(f"train_part={part!r}: choose one of {', '.join(TRAIN_PARTS)}")
        if part != self._train_part:
            from ..adapters import detach_adapter

            detach_adapter(self)
            self._train_part = part

    def trainable_module(self) -> torch.nn.Module:
        """The generation expert (``train_part="gen"``, default) or the whole model (``"all"``)."""
        return self.model.gen if self._train_part == "gen" else self.model

    def lora_target_modules(self) -> list[str]:
        from ..tinyumm.model import EXPERT_LINEARS

        return list(EXPERT_LINEARS)

    def box_sources(self) -> dict[str, Any]:
        from ..boxes.segmenter import SegmenterBoxes

        return {"segmenter": SegmenterBoxes(), "self-grounding": SelfGrounding(self)}

    # ------------------------------------------------------------------- the world (thin delegations to it)
    def categories(self) -> tuple[str, ...]:
        """The world's prompt categories."""
        from ..world.spec import CATEGORIES

        return tuple(CATEGORIES)

    def prompt_sets(self) -> tuple[str, ...]:
        """The world's prompt sets: ``train`` (what pre-training and rounds may train on), ``eval`` (in-distribution
        evaluation prompts, never trained on) and ``val`` (transfer: colour–shape pairings never drawn in training)."""
        from ..world.prompts import SPLITS

        return tuple(SPLITS)

    def prompts(self, set_name: str, categories: Sequence[str] | None, n: int, seed: int) -> list[PromptItem]:
        """``n`` prompts of the world split ``set_name``: the grammar's balanced mix, or shared out over
        ``categories``; each carries its parsed meaning (``spec``) for the referee."""
        from ..prompt_sets import share_out
        from ..world.prompts import make_prompts

        if set_name not in self.prompt_sets():
            raise ValueError(f"prompt set {set_name!r} is unknown; the sandbox offers {', '.join(self.prompt_sets())}")
        unknown = [c for c in categories or () if c not in self.categories()]
        if unknown:
            raise ValueError(f"unknown categories {unknown}; the world's categories are {', '.join(self.categories())}")
        if categories:
            specs = [spec for cat, k in share_out(list(categories), n) if k for spec in make_prompts(set_name, cat, k, seed)]
        else:
            specs = make_prompts(set_name, None, n, seed)
        return [PromptItem(text=spec.text, category=spec.category, spec=spec.to_dict()) for spec in specs]

    def example_prompts(self, seed: int = 0) -> list[tuple[str, str]]:
        """One in-distribution evaluation prompt per category: prompts of the kind the model was built for, which
        no round trains on (so a before/after comparison on them shows what a round generalises)."""
        return [(item.category, item.text) for c in self.categories() for item in self.prompts("eval", [c], 1, seed)]

    def referee(self) -> WorldReferee:
        return WorldReferee()

    def prompt_objects(self, prompt: str) -> list[str]:
        """The world's shapes ``prompt`` names (singular or plural); none means region rewards have nothing to
        measure and the image gets a global-only reward."""
        import re

        from ..world.spec import SHAPES

        words = set(re.findall(r"[a-z]+", prompt.lower()))
        return [shape for shape in SHAPES if shape in words or f"{shape}s" in words]

    # ------------------------------------------------------------------------------------------ generation
    def plan(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[list[tuple[int, int, int, int, int]]]:
        """The think mode's plans: one per (prompt, seed), written by the understanding expert."""
        from ..tinyumm.sampling import sample_plans

        return sample_plans(self.model, self.tokenizer, list(prompts), [int(s) for s in seeds], chunk=SAMPLING_CHUNK)

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        config: GenerationConfig,
        callback: ProgressCallback | None = None,
    ) -> list[Sample]:
        """One 64×64 image per (prompt, seed) in ``config.mode``; see the module docstring for determinism."""
        from PIL import Image

        from ..tinyumm.data import image_to_tensor, tensor_to_uint8
        from ..tinyumm.model import patchify, unpatchify
        from ..tinyumm.sampling import plan_text, sample_patches

        prompts, seeds = list(prompts), [int(s) for s in seeds]
        mode = config.mode or self.default_mode
        if mode not in self.generation_modes:
            raise ValueError(f"mode={mode!r}: the sandbox model generates in {', '.join(self.generation_modes)}")
        for p in prompts:
            self.tokenizer.ids(p)  # fail before sampling if a prompt is outside the vocabulary

        def report(done: int, total: int) -> None:
            if callback is not None:
                callback(ProgressEvent("generate", done, total, message=f"Euler step {done}/{total}"))

        plans = self.plan(prompts, seeds) if mode == "think" else None
        patches = sample_patches(self.model, self.tokenizer, prompts, seeds, config.steps, config.guidance,
                                 plans=plans, chunk=SAMPLING_CHUNK, callback=report)
        cfg = self.model.config
        arrays = tensor_to_uint8(unpatchify(patches, cfg.patch_size, cfg.image_size).clamp(-1, 1))
        settings = {"steps": config.steps, "guidance": config.guidance, "sampler": "flow-euler", "backend": self.name,
                    "mode": mode}
        samples = []
        for i, (prompt, seed, arr) in enumerate(zip(prompts, seeds, arrays)):
            image = Image.fromarray(arr, "RGB")
            payload = patchify(image_to_tensor([arr]), cfg.patch_size)[0]
            extra = dict(settings)
            if plans is not None:
                extra["plan"] = plan_text(self.model, plans[i])
                extra["plan_objects"] = [list(o) for o in plans[i]]
            samples.append(Sample(prompt=prompt, seed=seed, image=image, payload=payload, settings=extra))
        return samples

    # ------------------------------------------------------------------------------------------- training
    def token_losses(
        self,
        samples: Sequence[Sample],
        generator: torch.Generator | None = None,
        timestep_shift: float | None = None,
        cond_dropout: float | None = None,
    ) -> torch.Tensor:
        """``(B, 64)`` per-token ``mean_c (v_θ - (ε - x0))²`` at logit-normal timesteps, with grad.

        Conditioned on each sample's original short prompt (also for think-mode samples: SRUM trains the plain
        model on them), dropped (→ empty prompt) with probability ``cond_dropout`` (default
        ``self.cond_dropout``) so CFG keeps working; ``timestep_shift`` defaults to ``self.timestep_shift``.
        ``generator``: a CPU ``torch.Generator`` for t, ε and the dropout draws.
        """
        from ..tinyumm.data import image_to_tensor
        from ..tinyumm.model import flow_timesteps, patchify

        if not samples:
            raise ValueError("token_losses needs at least one sample")
        shift = self.timestep_shift if timestep_shift is None else float(timestep_shift)
        drop_p = self.cond_dropout if cond_dropout is None else float(cond_dropout)
        p = self.token_size
        x0 = torch.stack([
            torch.as_tensor(s.payload, dtype=torch.float32) if s.payload is not None
            else patchify(image_to_tensor([s.image]), p)[0]
            for s in samples
        ])
        b = x0.shape[0]
        t = flow_timesteps(b, generator, shift)
        eps = torch.randn(x0.shape, generator=generator)
        drop = torch.rand(b, generator=generator) < drop_p
        texts = ["" if d else s.prompt for s, d in zip(samples, drop.tolist())]
        ids, mask = self.tokenizer.encode(texts)
        dev = self.device
        xt = ((1 - t[:, None, None]) * x0 + t[:, None, None] * eps).to(dev, self._dtype)
        target = (eps - x0).to(dev)
        text_grad = any(q.requires_grad for q in self.model.und.parameters())
        with torch.set_grad_enabled(text_grad and torch.is_grad_enabled()):
            text = self.model.encode_text(ids.to(dev), mask.to(dev))
        v = self.model.velocity(text, xt, t.to(dev, self._dtype))
        return (v.float() - target).pow(2).mean(-1)

    # -------------------------------------------------------------------------------------- understanding
    def _check_image(self, image: Any) -> np.ndarray:
        arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        if arr.shape != (self.image_size[1], self.image_size[0], 3) or arr.dtype != np.uint8:
            raise ValueError(
                f"the sandbox model reads {self.image_size[0]}x{self.image_size[1]} RGB uint8 images; got an array "
                f"of shape {arr.shape} and dtype {arr.dtype} (resize the image first)"
            )
        return arr

    @torch.no_grad()
    def _understand(self, images: Sequence[Any], prompts: Sequence[str], boxes=None) -> dict[str, torch.Tensor]:
        from ..tinyumm.data import image_to_tensor
        from ..tinyumm.model import patchify

        arrays = [self._check_image(im) for im in images]
        ids, mask = self.tokenizer.encode(list(prompts))
        dev = self.device
        text = self.model.encode_text(ids.to(dev), mask.to(dev))
        patches = patchify(image_to_tensor(arrays), self.token_size).to(dev, self._dtype)
        box_t = None if boxes is None else torch.as_tensor(np.asarray(boxes, dtype=np.float32)).to(dev, self._dtype)
        out = self.model.understand(text, patches, box_t)
        return {k: v.float().cpu() for k, v in out.items()}

    def read(self, images: Sequence[Any], prompts: Sequence[str]) -> list[PatchReading]:
        """The understanding expert on 64×64 images (PIL or ``(64, 64, 3)`` uint8) given their prompts."""
        out = self._understand(images, prompts)
        return [self._reading(out, i) for i in range(len(images))]

    def _reading(self, out: dict[str, torch.Tensor], i: int) -> PatchReading:
        g = self.image_size[0] // self.token_size

        def probs(key: str) -> np.ndarray:
            return torch.softmax(out[key][i], -1).numpy().reshape(g, g, -1)

        return PatchReading(
            p_yes=float(torch.sigmoid(out["yes"][i])),
            object=torch.sigmoid(out["object"][i]).numpy().reshape(g, g),
            color=probs("color"), shape=probs("shape"), texture=probs("texture"), size=probs("size"),
        )

    def ground(self, image: Any, prompt: str = "", reading: PatchReading | None = None) -> list[Grounded]:
        """Objects the model finds by itself: components of same-label patches (see :class:`SelfGrounding`)."""
        r = reading if reading is not None else self.read([image], [prompt])[0]
        cfg = self.model.config
        g = r.object.shape[0]
        ps = self.token_size
        on = r.object > OBJECT_THRESHOLD
        label = r.color.argmax(-1) * 100 + r.shape.argmax(-1)
        seen = np.zeros_like(on)
        found: list[Grounded] = []
        for y in range(g):
            for x in range(g):
                if not on[y, x] or seen[y, x]:
                    continue
                stack, cells = [(y, x)], []
                seen[y, x] = True
                while stack:
                    cy, cx = stack.pop()
                    cells.append((cy, cx))
                    for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                        if 0 <= ny < g and 0 <= nx < g and on[ny, nx] and not seen[ny, nx] and label[ny, nx] == label[y, x]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
                ys = [c[0] for c in cells]
                xs = [c[1] for c in cells]
                w = np.array([r.object[c] for c in cells])

                def pooled(field: np.ndarray, cells=cells, w=w) -> np.ndarray:
                    return (np.stack([field[c] for c in cells]) * w[:, None]).sum(0) / w.sum()

                col, shp, tex = pooled(r.color), pooled(r.shape), pooled(r.texture)
                size = cfg.sizes[int(pooled(r.size).argmax())] if r.size is not None else None
                conf = float(w.mean() * col.max() * shp.max())
                box = (min(xs) * ps, min(ys) * ps, (max(xs) + 1) * ps, (max(ys) + 1) * ps)
                found.append(Grounded(cfg.colors[int(col.argmax())], cfg.shapes[int(shp.argmax())],
                                      cfg.textures[int(tex.argmax())], box, conf, size))
        found.sort(key=lambda f: -f.confidence)
        return found

    def judge_global(self, image: Any, prompt: str, config: JudgeConfig) -> GlobalJudgement:
        """``g = 2p - 1``: ``p`` is the learned ``<ask>`` head's P(yes) (``global_judge="learned"``), or that times
        ``FAILED_CHECK_FACTOR`` per failed check of the model's findings (``"grounded"``). The reason lists the
        model's own findings; the referee is never consulted."""
        if self.global_judge not in GLOBAL_JUDGES:
            raise ValueError(f"global_judge={self.global_judge!r}: choose one of {', '.join(GLOBAL_JUDGES)}")
        reading = self.read([image], [prompt])[0]
        found = self.ground(image, prompt, reading)
        size = self.image_size[0]
        seen = "; ".join(f"a {f.name} ({_where(f.box, size)})" for f in found) or "no objects"
        p = reading.p_yes
        checks: dict[str, bool] = {}
        if self.global_judge == "grounded":
            from ..world.prompts import parse_prompt

            spec = parse_prompt(prompt)
            if spec is not None:
                checks = grounded_checks(found, spec)
                p = p * FAILED_CHECK_FACTOR ** sum(not ok for ok in checks.values())
        failed = [k for k, ok in checks.items() if not ok]
        verdict = "matches" if p >= 0.5 else "does not match"
        why = (f" Failed checks: {'; '.join(failed)}." if failed else " All my checks pass.") if checks else ""
        reason = f"I see {seen}.{why} The image {verdict} the prompt (P(yes)={reading.p_yes:.2f}, p={p:.2f})."
        question = fill_template(config.global_template, prompt=prompt)
        answer = "Yes" if p >= 0.5 else "No"
        raw = f"Q: {question}\nA: {answer} (p={p:.2f}, P(yes)={reading.p_yes:.2f})\nSeen: {seen}"
        if checks:
            raw += "\nChecks: " + "; ".join(f"{k}: {'ok' if ok else 'FAILED'}" for k, ok in checks.items())
        score = 2.0 * p - 1.0
        return GlobalJudgement(score=score, reason=reason, raw_text=raw, parse_status="ok", raw_score=score,
                               question=question)

    def judge_regions(
        self, image: Any, prompt: str, regions: Sequence[Region], config: JudgeConfig
    ) -> list[RegionJudgement]:
        """One judgement per region, in order, from one pass of the understanding expert (region queries)."""
        self._check_image(image)
        size = self.image_size[0]
        clamped = [r.clamped(size, size) for r in regions]
        visible = [i for i, r in enumerate(clamped) if r.area > 0]
        out_regions: dict[int, dict[str, float | str]] = {}
        if visible:
            out = self._understand([image], [prompt], boxes=[[list(clamped[i].box) for i in visible]])
            cfg = self.model.config
            for j, i in enumerate(visible):
                names = [
                    cfg.sizes[int(out["region_size"][0, j].argmax())],
                    cfg.textures[int(out["region_texture"][0, j].argmax())],
                    cfg.colors[int(out["region_color"][0, j].argmax())],
                    cfg.shapes[int(out["region_shape"][0, j].argmax())],
                ]
                if names[1] == "solid":
                    names.pop(1)
                out_regions[i] = {"p": float(torch.sigmoid(out["region_yes"][0, j])),
                                  "p_object": float(torch.sigmoid(out["region_object"][0, j])), "name": " ".join(names)}
        results = []
        for i, (region, cl) in enumerate(zip(regions, clamped)):
            region_text = f"region [{cl.box[0]}, {cl.box[1]}, {cl.box[2]}, {cl.box[3]}]"
            if i not in out_regions:
                question = fill_template(config.region_template, prompt=prompt, region=region_text, object="nothing")
                results.append(RegionJudgement(region=region, object_name="", score=None, parse_status="failed",
                                               reason="the region is empty after clamping to the image",
                                               question=question, raw_text=f"Q: {question}\nA: (region not visible)"))
                continue
            r = out_regions[i]
            p, p_obj, name = float(r["p"]), float(r["p_object"]), str(r["name"])
            if p_obj < 0.5:
                name = f"background (nearest: {name})"
            # An object the prompt asks for → +1, any other drawn thing → −1, background (nothing drawn) → 0:
            # s = 2·P(asked) − P(object), so a background segment is neutral, as the rubric's "-0.4..0.4".
            score = float(np.clip(2.0 * p - p_obj, -1.0, 1.0))
            question = fill_template(config.region_template, prompt=prompt, region=region_text, object=name)
            asked = "one the prompt asks for" if p >= 0.5 else "not what the prompt asks for"
            reason = f"I see a {name} (P(object)={p_obj:.2f}); it is {asked} (p={p:.2f})."
            raw = (f"Q: {question}\nA: {'Yes' if p >= 0.5 else 'No'} (p={p:.2f})\nIdentified Object: {name}\n"
                   "View: box query on the full image")
            results.append(RegionJudgement(region=region, object_name=name, score=score, reason=reason, raw_text=raw,
                                           parse_status="ok", raw_score=score, question=question))
        return results
