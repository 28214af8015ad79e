"""The ``sandbox`` backend: the embedded TinyUMM (one shared trunk that draws and understands 64×64 images).

Implements :class:`srum_core.protocol.UnifiedModel`:

- ``generate``: rectified-flow Euler sampling with classifier-free guidance; noise per image from its own
  seeded CPU generator, model run on fixed-size chunks, so an image depends only on (prompt, seed, settings).
  ``Sample.payload`` is the ``(64, P)`` token tensor of the saved (uint8-quantised) image (encoded by the
  model's latent codec, or raw pixel patches for a codec-less model), so a sample re-read from disk trains exactly
  like a fresh one.
- ``judge_global``: ``g = 2p - 1``. By default (``global_judge = "grounded"``) the model lists what its own
  per-patch heads found where, checks that list against the prompt (counts, textures, sizes, relation, nothing extra:
  :func:`grounded_checks`) and lowers the ``<ask>`` head's P(yes) for each failed check; ``"ask"`` uses P(yes)
  alone. The reason gives the findings and the failed checks (never the referee).
- ``judge_regions``: the region is shown as a crop resized to 64×64 (``region_view="crop"``) or as a mask on
  the 8×8 patch grid of the full image (``"coords"``; ``"boxes"`` maps to ``"coords"`` for this model, which
  cannot read drawn boxes). The object name comes from the colour/shape/texture heads pooled over the region
  (weighted by objectness); ``P(yes) = P(object) · max_k P(colour_k) · P(shape_k) · P(texture_k) · P(size_k)``
  over the prompt's requested objects (attributes the prompt leaves open count as 1; size comes from the size
  head on the full image, pooled over the box, and counts as 1 for a model without one). The prompt's object list is read
  with the world grammar's exact parser (``srum_core.world.prompts.parse_prompt``); all visual evidence is the
  model's own.
- ``box_sources``: ``self-grounding`` (connected components of same-label patches of the model's own
  object/colour/shape heads) first, then the class-agnostic ``segmenter``.
- ``token_losses``: per-token velocity squared error (mean over a token's values), ``(B, 64)``.
- the world behind the contract: ``categories``, ``prompt_sets`` (the world's splits), ``prompts``,
  ``example_prompts``, ``referee`` (:class:`WorldReferee`) and ``prompt_objects`` delegate to ``srum_core.world``.

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

from ..config import GenerationConfig, JudgeConfig
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
    dev = resolve_device(device)
    key = (str(folder.resolve()), str(dev))
    if key not in _CACHE:
        from ..tinyumm.model import TinyUMM
        from ..tinyumm.tokenizer import WordTokenizer

        model = TinyUMM.from_pretrained(str(folder)).to(dev).eval()
        tokenizer = WordTokenizer(model.config.vocab, model.config.max_text_len)
        _CACHE[key] = (model, tokenizer)
        logger.info("loaded TinyUMM from %s on %s", folder, dev)
    model, tokenizer = _CACHE[key]
    return SandboxBackend(model, tokenizer, source=str(folder))


@dataclass(frozen=True)
class PatchReading:
    """What the understanding path reads from one image given a prompt.

    ``p_yes``: P(image matches prompt); ``object``: ``(8, 8)`` P(object) per patch; ``color``/``shape``/
    ``texture``: ``(8, 8, C)`` class probabilities per patch (rows top to bottom); ``size``: the same for
    small / large, or None for a model without a size head.
    """

    p_yes: float
    object: np.ndarray
    color: np.ndarray
    shape: np.ndarray
    texture: np.ndarray
    size: np.ndarray | None = None


@dataclass(frozen=True)
class Grounded:
    """One object the model found on its own: label words, pixel box, confidence; ``size`` is None when the
    model has no size head."""

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
GLOBAL_JUDGES = ("grounded", "ask")


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
    """TinyUMM behind the :class:`~srum_core.protocol.UnifiedModel` contract (see the module docstring)."""

    name = "sandbox"

    def __init__(self, model, tokenizer, source: str = "memory"):
        self.model = model
        self.tokenizer = tokenizer
        self.source = source
        #: Timestep shift and prompt dropout used by :meth:`token_losses` (a trainer may set them).
        self.timestep_shift: float = float(getattr(model.config, "flow_shift", 1.0))
        self.cond_dropout: float = 0.1
        #: How :meth:`judge_global` decides: ``"grounded"`` (ask head × checks on its own findings) or ``"ask"``.
        self.global_judge: str = "grounded"

    # ----------------------------------------------------------------------------------------------- set-up
    @classmethod
    def from_random(cls, seed: int, tiny: bool = True) -> SandboxBackend:
        """Randomly initialised weights (tests): ``tiny`` = a 2-layer, d=32 trunk; else the shipped size."""
        from ..tinyumm.train import TINY, TrainRunConfig, build_model

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, tokenizer = build_model(TINY if tiny else TrainRunConfig())
        return cls(model.eval(), tokenizer, source=f"random(seed={seed}, tiny={tiny})")

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

    @torch.no_grad()
    def _tokens(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` in [-1, 1] → the trunk's image tokens ``(B, N, P)`` (CPU float32)."""
        return self.model.encode_images(images.to(self.device, self._dtype)).float().cpu()

    def token_grid(self, width: int, height: int) -> tuple[int, int]:
        if (width, height) != self.image_size:
            raise ValueError(f"the sandbox model works on {self.image_size[0]}x{self.image_size[1]} images, got {width}x{height}")
        return (height // self.token_size, width // self.token_size)

    def trainable_module(self) -> torch.nn.Module:
        return self.model

    def lora_target_modules(self) -> list[str]:
        from ..tinyumm.model import TRUNK_LINEARS

        return list(TRUNK_LINEARS)

    def box_sources(self) -> dict[str, Any]:
        from ..boxes.segmenter import SegmenterBoxes

        return {"self-grounding": SelfGrounding(self), "segmenter": SegmenterBoxes()}

    # ------------------------------------------------------------------- the world (thin delegations to it)
    def categories(self) -> tuple[str, ...]:
        """The world's prompt categories."""
        from ..world.spec import CATEGORIES

        return tuple(CATEGORIES)

    def prompt_sets(self) -> tuple[str, ...]:
        """The world's prompt splits: ``train``, and ``val`` with colour–shape pairings never seen in training."""
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
        """One training-split prompt per category: prompts the model was built for."""
        return [(item.category, item.text) for c in self.categories() for item in self.prompts("train", [c], 1, seed)]

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
    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        config: GenerationConfig,
        callback: ProgressCallback | None = None,
    ) -> list[Sample]:
        """One 64×64 image per (prompt, seed); see the module docstring for the determinism guarantee."""
        from PIL import Image

        from ..tinyumm.data import image_to_tensor, tensor_to_uint8
        from ..tinyumm.model import sample_patches

        prompts, seeds = list(prompts), [int(s) for s in seeds]
        for p in prompts:
            self.tokenizer.ids(p)  # fail before sampling if a prompt is outside the vocabulary

        def report(done: int, total: int) -> None:
            if callback is not None:
                callback(ProgressEvent("generate", done, total, message=f"Euler step {done}/{total}"))

        patches = sample_patches(
            self.model, self.tokenizer, prompts, seeds, config.steps, config.guidance, chunk=SAMPLING_CHUNK,
            callback=report,
        )
        with torch.no_grad():
            arrays = tensor_to_uint8(self.model.decode_tokens(patches.to(self.device, self._dtype)).float())
        settings = {"steps": config.steps, "guidance": config.guidance, "sampler": "flow-euler", "backend": self.name}
        samples = []
        for prompt, seed, arr in zip(prompts, seeds, arrays):
            image = Image.fromarray(arr, "RGB")
            payload = self._tokens(image_to_tensor([arr]))[0]
            samples.append(Sample(prompt=prompt, seed=seed, image=image, payload=payload, settings=dict(settings)))
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

        Conditioned on each sample's original prompt, dropped (→ empty prompt) with probability
        ``cond_dropout`` (default ``self.cond_dropout``) so CFG keeps working; ``timestep_shift`` defaults to
        ``self.timestep_shift``. ``generator``: a CPU ``torch.Generator`` for t, ε and the dropout draws.
        """
        from ..tinyumm.data import image_to_tensor
        from ..tinyumm.model import flow_timesteps

        if not samples:
            raise ValueError("token_losses needs at least one sample")
        shift = self.timestep_shift if timestep_shift is None else float(timestep_shift)
        drop_p = self.cond_dropout if cond_dropout is None else float(cond_dropout)
        x0 = torch.stack([
            torch.as_tensor(s.payload, dtype=torch.float32) if s.payload is not None
            else self._tokens(image_to_tensor([s.image]))[0]
            for s in samples
        ])
        b = x0.shape[0]
        t = flow_timesteps(b, generator, shift)
        eps = torch.randn(x0.shape, generator=generator)
        drop = torch.rand(b, generator=generator) < drop_p
        texts = ["" if d else s.prompt for s, d in zip(samples, drop.tolist())]
        ids, mask = self.tokenizer.encode(texts)
        dev = self.device
        xt = ((1 - t[:, None, None]) * x0 + t[:, None, None] * eps).to(dev)
        target = (eps - x0).to(dev)
        mode = torch.zeros(b, dtype=torch.long, device=dev)
        v = self.model(ids.to(dev), mask.to(dev), xt, t.to(dev), mode)["velocity"]
        return (v.float() - target).pow(2).mean(-1)

    # -------------------------------------------------------------------------------------- understanding
    @torch.no_grad()
    def read(self, images: Sequence[Any], prompts: Sequence[str]) -> list[PatchReading]:
        """The understanding path on 64×64 images (PIL or ``(64, 64, 3)`` uint8) given their prompts."""
        from ..tinyumm.data import image_to_tensor

        return self._read_tensor(image_to_tensor([self._check_image(im) for im in images]), list(prompts))

    @torch.no_grad()
    def _read_tensor(self, images: torch.Tensor, prompts: list[str]) -> list[PatchReading]:
        ids, mask = self.tokenizer.encode(prompts)
        dev = self.device
        b = images.shape[0]
        out = self.model(
            ids.to(dev), mask.to(dev), self._tokens(images).to(dev),
            torch.zeros(b, device=dev), torch.ones(b, dtype=torch.long, device=dev),
        )
        g = self.image_size[0] // self.token_size
        p_yes = torch.sigmoid(out["yes"]).float().cpu().numpy()
        obj = torch.sigmoid(out["object"]).float().cpu().numpy().reshape(b, g, g)
        col = torch.softmax(out["color"], -1).float().cpu().numpy().reshape(b, g, g, -1)
        shp = torch.softmax(out["shape"], -1).float().cpu().numpy().reshape(b, g, g, -1)
        tex = torch.softmax(out["texture"], -1).float().cpu().numpy().reshape(b, g, g, -1)
        siz = torch.softmax(out["size"], -1).float().cpu().numpy().reshape(b, g, g, -1) if "size" in out else None
        return [PatchReading(float(p_yes[i]), obj[i], col[i], shp[i], tex[i], None if siz is None else siz[i])
                for i in range(b)]

    def _check_image(self, image: Any) -> np.ndarray:
        arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
        if arr.shape != (self.image_size[1], self.image_size[0], 3) or arr.dtype != np.uint8:
            raise ValueError(
                f"the sandbox model reads {self.image_size[0]}x{self.image_size[1]} RGB uint8 images; got an array "
                f"of shape {arr.shape} and dtype {arr.dtype} (resize the image first)"
            )
        return arr

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
                col = (np.stack([r.color[c] for c in cells]) * w[:, None]).sum(0) / w.sum()
                shp = (np.stack([r.shape[c] for c in cells]) * w[:, None]).sum(0) / w.sum()
                tex = (np.stack([r.texture[c] for c in cells]) * w[:, None]).sum(0) / w.sum()
                size = None
                if r.size is not None:
                    siz = (np.stack([r.size[c] for c in cells]) * w[:, None]).sum(0) / w.sum()
                    size = cfg.sizes[int(siz.argmax())]
                conf = float(w.mean() * col.max() * shp.max())
                box = (min(xs) * ps, min(ys) * ps, (max(xs) + 1) * ps, (max(ys) + 1) * ps)
                found.append(Grounded(cfg.colors[int(col.argmax())], cfg.shapes[int(shp.argmax())],
                                      cfg.textures[int(tex.argmax())], box, conf, size))
        found.sort(key=lambda f: -f.confidence)
        return found

    def judge_global(self, image: Any, prompt: str, config: JudgeConfig) -> GlobalJudgement:
        """``g = 2p - 1``. ``global_judge="ask"``: ``p = P(yes)`` of the ``<ask>`` head alone. ``"grounded"``
        (default): the model first lists what its own heads found where (self-grounding), checks that list
        against the prompt (:func:`grounded_checks`), and ``p = P(yes) · FAILED_CHECK_FACTOR^(failed checks)``.
        The reason is the model's own findings and checks; the referee is never consulted."""
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
        """One judgement per region, in order; see the module docstring for views and the score."""
        from ..tinyumm.data import crop_resize, image_to_tensor
        from ..world.prompts import parse_prompt

        spec = parse_prompt(prompt)
        if spec is None:
            raise ValueError(
                f"the sandbox judge cannot read the prompt {prompt!r}: it is outside the world's grammar "
                "(see `python -m srum_core prompts --backend sandbox` for prompts it knows)"
            )
        arr = self._check_image(image)
        size = self.image_size[0]
        view = "coords" if config.region_view == "boxes" else config.region_view
        clamped = [r.clamped(size, size) for r in regions]
        visible = [i for i, r in enumerate(clamped) if r.area > 0]
        full = image_to_tensor([arr])
        readings: dict[int, tuple[np.ndarray, PatchReading]] = {}
        # The full-image reading serves the coordinate view and the size head (sizes need the uncropped image).
        needs_whole = visible and (view != "crop" or self.model.size_head is not None)
        whole = self._read_tensor(full, [prompt])[0] if needs_whole else None
        if view == "crop" and visible:
            crops = torch.stack([crop_resize(full[0], None, clamped[i].box, size)[0] for i in visible])
            for i, rd in zip(visible, self._read_tensor(crops, [prompt] * len(visible))):
                readings[i] = (np.ones_like(rd.object), rd)  # the whole crop is the region
        elif visible:
            for i in visible:
                readings[i] = (self._box_weights(clamped[i].box), whole)
        out = []
        for i, (region, cl) in enumerate(zip(regions, clamped)):
            region_text = f"region [{cl.box[0]}, {cl.box[1]}, {cl.box[2]}, {cl.box[3]}]"
            if i not in readings:
                question = fill_template(config.region_template, prompt=prompt, region=region_text, object="nothing")
                out.append(RegionJudgement(region=region, object_name="", score=None, parse_status="failed",
                                           reason="the region is empty after clamping to the image",
                                           question=question, raw_text=f"Q: {question}\nA: (region not visible)"))
                continue
            cover, rd = readings[i]
            sizes = self._size_probs(whole, clamped[i].box)
            out.append(self._judge_one(region, region_text, cover, rd, spec, prompt, config, sizes))
        return out

    def _box_weights(self, box: tuple[int, int, int, int]) -> np.ndarray:
        """``(8, 8)`` fraction of each patch inside ``box``."""
        ps, g = self.token_size, self.image_size[0] // self.token_size
        edges = np.arange(g + 1) * ps
        fx = np.clip(np.minimum(edges[1:], box[2]) - np.maximum(edges[:-1], box[0]), 0, ps) / ps
        fy = np.clip(np.minimum(edges[1:], box[3]) - np.maximum(edges[:-1], box[1]), 0, ps) / ps
        return fy[:, None] * fx[None, :]

    def _size_probs(self, whole: PatchReading | None, box: tuple[int, int, int, int]) -> np.ndarray | None:
        """Small / large probabilities of the object in ``box``, from the size head on the FULL image (a resized
        crop shows no absolute size), pooled over the box's patches weighted by objectness; None without a
        size head."""
        if whole is None or whole.size is None:
            return None
        w = self._box_weights(box) * whole.object
        if w.sum() <= 1e-6:
            w = self._box_weights(box)
        return (whole.size * (w / w.sum())[..., None]).sum((0, 1))

    def _judge_one(
        self, region, region_text, cover, rd: PatchReading, spec, prompt, config, sizes: np.ndarray | None = None
    ) -> RegionJudgement:
        cfg = self.model.config
        w = cover * rd.object
        p_object = float((cover * rd.object).max())
        if w.sum() <= 1e-6:
            w = cover
        w = w / w.sum()
        col = (rd.color * w[..., None]).sum((0, 1))
        shp = (rd.shape * w[..., None]).sum((0, 1))
        tex = (rd.texture * w[..., None]).sum((0, 1))
        named = Grounded(cfg.colors[int(col.argmax())], cfg.shapes[int(shp.argmax())], cfg.textures[int(tex.argmax())],
                         region.box, p_object, None if sizes is None else cfg.sizes[int(sizes.argmax())])
        best, best_phrase = 0.0, ""
        for obj in spec.objects:
            p = 1.0
            if obj.color is not None:
                p *= float(col[list(cfg.colors).index(obj.color)])
            p *= float(shp[list(cfg.shapes).index(obj.shape)])
            if obj.texture is not None:
                p *= float(tex[list(cfg.textures).index(obj.texture)])
            if obj.size is not None and sizes is not None:
                p *= float(sizes[list(cfg.sizes).index(obj.size)])
            if p > best:
                best, best_phrase = p, obj.phrase
        p_yes = p_object * best
        score = 2.0 * p_yes - 1.0
        question = fill_template(config.region_template, prompt=prompt, region=region_text, object=named.name)
        answer = "Yes" if p_yes >= 0.5 else "No"
        reason = (f"I see a {named.name} (P(object)={p_object:.2f}); best match to the prompt: "
                  f"{best_phrase} (p={best:.2f}).")
        raw = f"Q: {question}\nA: {answer} (p={p_yes:.2f})\nIdentified Object: {named.name}"
        return RegionJudgement(region=region, object_name=named.name, score=score, reason=reason, raw_text=raw,
                               parse_status="ok", raw_score=score, question=question)
