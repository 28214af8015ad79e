"""Training data for TinyUMM v2, drawn fresh from the synthetic world every step (srum_core.world).

Objects sit on the world's slot grid and are pasted from a cache of exact tiles, so a batch of 64 images costs a
few milliseconds on a CPU: training never sees the same layout twice.

- **Generation** batches (:meth:`WorldSampler.generation_batch`): renders of *train*-split prompts under
  *noisy* captions (:mod:`srum_core.world.captions`, like web alt-text), a share of them also conditioned on
  their exact plan (the think mode's input), a share with the null condition (for CFG).
- **Understanding** batches (:meth:`WorldSampler.understanding_batch`): prompts of every split with *exact*
  labels: half the images show the prompt, half a near miss (:func:`~srum_core.world.prompts.perturb_spec`) or
  another prompt; one region query per object (and sometimes an empty box) labelled "an object the prompt asks
  for" or not, with its attributes; per-patch labels; and the plan of the prompt's own layout as the planner's
  target. Images are degraded at random (blur, noise, brightness, faint ghosts) so the judge stays right on the
  model's own imperfect drawings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..world import spec as world_spec
from ..world.captions import CaptionNoise, noisy_caption

IGNORE = -100
MAX_OBJECTS = world_spec.MAX_OBJECTS


def world_classes() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(colors, shapes, textures, sizes)`` class names of the heads and plan fields, in order."""
    return tuple(world_spec.COLORS), tuple(world_spec.SHAPES), tuple(world_spec.TEXTURES), tuple(world_spec.SIZES)


def image_to_tensor(images: Sequence) -> torch.Tensor:
    """PIL RGB images (or ``(H, W, 3)`` uint8 arrays) → ``(B, 3, H, W)`` float32 in [-1, 1]."""
    arr = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] → ``(B, H, W, 3)`` uint8 (rounded, clamped)."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(B, C, H, W)`` with reflect padding."""
    radius = max(1, int(round(3 * sigma)))
    xs = torch.arange(-radius, radius + 1, dtype=images.dtype)
    k = torch.exp(-0.5 * (xs / sigma) ** 2)
    k = k / k.sum()
    c = images.shape[1]
    x = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)


def draw_scenes(scenes: Sequence) -> np.ndarray:
    """``(B, S, S, 3)`` uint8 renders of slot scenes (exactly :func:`~srum_core.world.render.render_scene`)."""
    from ..world.render import object_tile

    size = world_spec.IMAGE_SIZE
    step = world_spec.SLOT
    out = np.empty((len(scenes), size, size, 3), dtype=np.uint8)
    out[:] = world_spec.BACKGROUND
    for b, scene in enumerate(scenes):
        for obj in scene.objects:
            r, c = divmod(world_spec.slot_of(obj.cx, obj.cy), world_spec.GRID)
            out[b, r * step : (r + 1) * step, c * step : (c + 1) * step] = object_tile(
                obj.shape, obj.color, obj.size, obj.texture
            )[0]
    return out


def object_wanted(obj, spec) -> bool:
    """Is ``obj`` (anything with shape/colour/size/texture) an object ``spec`` asks for — its kind, and its size
    and texture where the prompt fixes them? The per-object question both the judge and the referee answer."""
    return any(
        o.shape == obj.shape and (o.color is None or o.color == obj.color)
        and (o.size is None or o.size == obj.size) and (o.texture is None or o.texture == obj.texture)
        for o in spec.objects
    )


def _plan_indices(rows, classes) -> list[tuple[int, int, int, int, int]]:
    """Plan rows ``(slot, colour, shape, size, texture)`` as names → as class indices of ``classes``."""
    colors, shapes, textures, sizes = classes
    return [(slot, colors.index(c), shapes.index(sh), sizes.index(si), textures.index(t)) for slot, c, sh, si, t in rows]


def plan_objects(spec, scene, classes) -> list[tuple[int, int, int, int, int]]:
    """The canonical plan of ``scene`` drawn for ``spec`` (:func:`~srum_core.world.plan_errors.plan_of`: objects in
    the prompt's order, copies of one kind by slot), each ``(slot, colour, shape, size, texture)`` as class indices
    of ``classes`` (see :func:`world_classes`)."""
    from ..world.plan_errors import plan_of

    return _plan_indices(plan_of(spec, scene), classes)


def plan_objects_of(scene, classes) -> list[tuple[int, int, int, int, int]]:
    """The plan of ``scene`` in its own object order (a wrong plan, which no prompt's grouping fits), as class
    indices of ``classes``."""
    return _plan_indices([(world_spec.slot_of(p.cx, p.cy, scene.size), p.color, p.shape, p.size, p.texture)
                          for p in scene.objects], classes)


@dataclass(frozen=True)
class DataConfig:
    """What the sampler draws. ``caption_noise``: generation captions only. ``plan_p``: share of generation
    examples also conditioned on their exact plan (think mode). ``und_splits``: share of understanding prompts
    from each split. ``easy_negative_p``: share of negatives that show another prompt's render instead of a near
    miss. ``empty_region_p``: chance of one extra query on an empty box. ``p_clean``: share of understanding
    images left undegraded. ``box_jitter``: ± pixels on each side of a region box (boxes from a segmenter are
    not exact)."""

    caption_noise: CaptionNoise = field(default_factory=CaptionNoise)
    plan_p: float = 0.5
    und_splits: tuple[tuple[str, float], ...] = (("train", 0.55), ("eval", 0.15), ("val", 0.3))
    easy_negative_p: float = 0.2
    empty_region_p: float = 0.5
    p_clean: float = 0.4
    ghost_p: float = 0.15
    box_jitter: int = 2
    #: Think-mode realism (v3; 0 = the v2 stream, bit for bit). ``plan_error_p``: share of understanding
    #: examples whose planner target is a plan with one realistic mistake (:func:`~srum_core.world.plan_errors.
    #: corrupt_plan`), so the planner writes wrong plans about as often. ``plan_follow_error_p``: share of
    #: plan-conditioned generation examples whose image shows one mistake against the right plan they are given
    #: (the generation expert sometimes fails a right plan). ``edit_negative_p``: share of the judge's negatives
    #: that are the positive layout with one mistake (hard negatives: a flipped relation, a wrong count, ...).
    plan_error_p: float = 0.0
    plan_follow_error_p: float = 0.0
    edit_negative_p: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.caption_noise, dict):
            object.__setattr__(self, "caption_noise", CaptionNoise(**self.caption_noise))
        object.__setattr__(self, "und_splits", tuple((str(a), float(b)) for a, b in self.und_splits))
        if not 0.0 <= self.plan_p <= 1.0:
            raise ValueError("plan_p must lie in [0, 1]")
        if abs(sum(w for _, w in self.und_splits) - 1.0) > 1e-6:
            raise ValueError("und_splits weights must sum to 1")
        for name in ("plan_error_p", "plan_follow_error_p", "edit_negative_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")


def draw_specs(split: str, n: int, rng: np.random.Generator) -> list:
    """``n`` random prompts of ``split``, categories uniform, repeats allowed (fast: no distinctness search)."""
    from ..world.prompts import _random_spec, split_of

    out = []
    cats = world_spec.CATEGORIES
    for _ in range(n):
        cat = cats[int(rng.integers(len(cats)))]
        while True:
            try:
                spec = _random_spec(cat, rng)
            except ValueError:
                continue
            if split_of(spec) == split:
                out.append(spec)
                break
    return out


class WorldSampler:
    """Fresh training batches from the world, deterministic from ``seed`` (numpy for the world, a torch
    generator for noise)."""

    def __init__(self, config: DataConfig, seed: int, classes=None, n_slots: int = world_spec.N_SLOTS,
                 patch: int = world_spec.SLOT):
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.classes = classes or world_classes()
        self.n_slots = n_slots
        self.patch = patch

    # -------------------------------------------------------------------------------------------- generation
    def generation_batch(self, n: int, cond_dropout: float) -> dict:
        """``texts`` (noisy captions; "" = null), ``images (n, 3, S, S)`` in [-1, 1], ``plans`` (exact plan or
        None per example) and ``specs``."""
        from ..world.render import sample_scene

        specs = draw_specs("train", n, self.rng)
        scenes = [sample_scene(s, self.rng) for s in specs]
        texts, plans = [], []
        for spec, scene in zip(specs, list(scenes)):
            if self.rng.random() < cond_dropout:
                texts.append("")
                plans.append(None)
                continue
            text, _ = noisy_caption(spec, self.rng, self.config.caption_noise)
            texts.append(text)
            plans.append(plan_objects(spec, scene, self.classes) if self.rng.random() < self.config.plan_p else None)
            p_fail = self.config.plan_follow_error_p
            if plans[-1] is not None and p_fail > 0 and self.rng.random() < p_fail:
                scenes[len(plans) - 1] = self._edited(spec, scene)  # the image misses the right plan once
        images = torch.from_numpy(draw_scenes(scenes)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        return {"texts": texts, "images": images, "plans": plans, "specs": specs}

    # ----------------------------------------------------------------------------------------- understanding
    def _und_specs(self, n: int) -> list:
        names = [s for s, _ in self.config.und_splits]
        weights = np.array([w for _, w in self.config.und_splits])
        picks = self.rng.choice(len(names), size=n, p=weights)
        out = [None] * n
        for k, name in enumerate(names):
            idx = np.flatnonzero(picks == k)
            for i, spec in zip(idx, draw_specs(name, len(idx), self.rng)):
                out[int(i)] = spec
        return out

    def understanding_batch(self, n: int, gen: torch.Generator) -> dict:
        """Exact-label understanding examples (see the module docstring).

        Returns ``texts``; ``images (n, 3, S, S)``; ``yes (n,)``; per patch ``object (n, N)`` float and
        ``color``/``shape``/``texture``/``size`` ``(n, N)`` long (IGNORE on background); regions ``boxes (n, R, 4)``
        pixels, ``box_mask (n, R)``, ``region_yes``/``region_object (n, R)`` float, ``region_color``/
        ``region_shape``/``region_texture``/``region_size (n, R)`` long; ``plans`` (the prompt's own layout).
        """
        from ..world.prompts import perturb_spec
        from ..world.render import sample_scene, scene_matches

        colors, shapes, textures, sizes = self.classes
        specs = self._und_specs(n)
        pos_scenes = [sample_scene(s, self.rng) for s in specs]
        shown, yes = [], np.zeros(n, dtype=np.float32)
        for i, (spec, scene) in enumerate(zip(specs, pos_scenes)):
            if self.rng.random() < 0.5:
                shown.append(scene)
                yes[i] = 1.0
            elif self.rng.random() < self.config.easy_negative_p:
                other = specs[int(self.rng.integers(n))]
                other_scene = sample_scene(other, self.rng)
                shown.append(other_scene)
                yes[i] = float(scene_matches(spec, other_scene))  # another prompt's render may still fit
            elif self.config.edit_negative_p > 0 and self.rng.random() < self.config.edit_negative_p:
                # The same layout with one mistake, never a match; flipped relations weighted up (the v2 judge
                # said "yes" to them).
                shown.append(self._edited(spec, scene, weights={"relation": 3.0}))
                yes[i] = 0.0
            else:
                near = sample_scene(perturb_spec(spec, self.rng), self.rng)
                shown.append(near)
                yes[i] = float(scene_matches(spec, near))
        images = draw_scenes(shown)
        r_max = MAX_OBJECTS + 1
        boxes = np.zeros((n, r_max, 4), dtype=np.float32)
        box_mask = np.zeros((n, r_max), dtype=bool)
        reg = {k: np.full((n, r_max), IGNORE, dtype=np.int64) for k in ("color", "shape", "texture", "size")}
        reg_yes = np.zeros((n, r_max), dtype=np.float32)
        reg_obj = np.zeros((n, r_max), dtype=np.float32)
        g = world_spec.IMAGE_SIZE // self.patch
        per_slot = g // world_spec.GRID
        patch_lab = {k: np.full((n, g, g), IGNORE, dtype=np.int64) for k in ("color", "shape", "texture", "size")}
        patch_obj = np.zeros((n, g, g), dtype=np.float32)
        jit = self.config.box_jitter
        size = world_spec.IMAGE_SIZE
        for i, (spec, scene) in enumerate(zip(specs, shown)):
            used = set()
            for k, obj in enumerate(scene.objects):
                slot = world_spec.slot_of(obj.cx, obj.cy)
                used.add(slot)
                x1, y1, x2, y2 = obj.box
                d = self.rng.integers(-jit, jit + 1, size=4) if jit else np.zeros(4, dtype=int)
                bx = [max(0, x1 + d[0]), max(0, y1 + d[1]), min(size, x2 + d[2]), min(size, y2 + d[3])]
                boxes[i, k] = bx
                box_mask[i, k] = True
                reg_yes[i, k] = float(object_wanted(obj, spec))
                reg_obj[i, k] = 1.0
                labels = (colors.index(obj.color), shapes.index(obj.shape), textures.index(obj.texture),
                          sizes.index(obj.size))
                r, c = divmod(slot, world_spec.GRID)
                for key, value in zip(("color", "shape", "texture", "size"), labels):
                    reg[key][i, k] = value
                    patch_lab[key][i, r * per_slot : (r + 1) * per_slot, c * per_slot : (c + 1) * per_slot] = value
                patch_obj[i, r * per_slot : (r + 1) * per_slot, c * per_slot : (c + 1) * per_slot] = 1.0
            k = len(scene.objects)
            if k < r_max and self.rng.random() < self.config.empty_region_p:
                free = [s for s in range(world_spec.N_SLOTS) if s not in used]
                slot = free[int(self.rng.integers(len(free)))]
                r, c = divmod(slot, world_spec.GRID)
                cell = world_spec.SLOT
                lo = self.rng.integers(0, 5, size=2)
                hi = self.rng.integers(0, 5, size=2)
                boxes[i, k] = [c * cell + lo[0], r * cell + lo[1], (c + 1) * cell - hi[0], (r + 1) * cell - hi[1]]
                box_mask[i, k] = True
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)
        x = self._ghosts(x, shown)
        plans = [plan_objects(s, sc, self.classes) for s, sc in zip(specs, pos_scenes)]
        if self.config.plan_error_p > 0:
            for i, (spec, scene) in enumerate(zip(specs, pos_scenes)):
                if self.rng.random() < self.config.plan_error_p:
                    plans[i] = plan_objects_of(self._edited(spec, scene), self.classes)
        return {
            "texts": [s.text for s in specs],
            "images": degrade(x, gen, self.config.p_clean),
            "yes": torch.from_numpy(yes),
            "object": torch.from_numpy(patch_obj.reshape(n, -1)),
            **{k: torch.from_numpy(v.reshape(n, -1)) for k, v in patch_lab.items()},
            "boxes": torch.from_numpy(boxes),
            "box_mask": torch.from_numpy(box_mask),
            "region_yes": torch.from_numpy(reg_yes),
            "region_object": torch.from_numpy(reg_obj),
            **{f"region_{k}": torch.from_numpy(v) for k, v in reg.items()},
            "plans": plans,
            "specs": specs,
        }

    def _edited(self, spec, scene, weights: dict[str, float] | None = None):
        """``scene`` with one realistic mistake (:func:`~srum_core.world.plan_errors.corrupt_plan`)."""
        from ..world.plan_errors import corrupt_plan, plan_of
        from ..world.render import scene_from_slots

        wrong, _kind = corrupt_plan(spec, plan_of(spec, scene), self.rng, weights=weights)
        return scene_from_slots(wrong, scene.size)

    def _ghosts(self, images: torch.Tensor, scenes: Sequence) -> torch.Tensor:
        """Blend a faint object (10–30%) into an empty slot of some images: a flow sample's unresolved ghost,
        which the referee does not count and the judge must ignore."""
        from ..world.render import object_tile

        colors, shapes, textures, sizes = self.classes
        step = world_spec.SLOT
        for i, scene in enumerate(scenes):
            if self.rng.random() >= self.config.ghost_p:
                continue
            used = {world_spec.slot_of(o.cx, o.cy) for o in scene.objects}
            free = [s for s in range(world_spec.N_SLOTS) if s not in used]
            slot = free[int(self.rng.integers(len(free)))]
            tile = object_tile(shapes[int(self.rng.integers(len(shapes)))], colors[int(self.rng.integers(len(colors)))],
                               sizes[int(self.rng.integers(len(sizes)))], textures[int(self.rng.integers(len(textures)))])[0]
            alpha = float(self.rng.uniform(0.1, 0.3))
            t = torch.from_numpy(tile.astype(np.float32)).permute(2, 0, 1).div(127.5).sub(1.0)
            r, c = divmod(slot, world_spec.GRID)
            region = images[i, :, r * step : (r + 1) * step, c * step : (c + 1) * step]
            images[i, :, r * step : (r + 1) * step, c * step : (c + 1) * step] = (1 - alpha) * region + alpha * t
        return images


def degrade(images: torch.Tensor, gen: torch.Generator, p_clean: float = 0.4) -> torch.Tensor:
    """Random degradations per image (``(B, 3, H, W)`` in [-1, 1]): blur, noise, brightness shifts."""
    out = []
    for img in images:
        x = img[None]
        if torch.rand((), generator=gen).item() >= p_clean:
            if torch.rand((), generator=gen).item() < 0.5:
                x = gaussian_blur(x, 0.3 + 0.7 * torch.rand((), generator=gen).item())
            if torch.rand((), generator=gen).item() < 0.5:
                x = x + (0.02 + 0.08 * torch.rand((), generator=gen).item()) * torch.randn(x.shape, generator=gen)
            if torch.rand((), generator=gen).item() < 0.3:
                x = x + 0.1 * (torch.rand((1, 3, 1, 1), generator=gen) - 0.5)
        out.append(x.clamp(-1, 1))
    return torch.cat(out)
