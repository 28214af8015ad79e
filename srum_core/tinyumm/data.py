"""Training data for TinyUMM, drawn from the synthetic world (srum_core.world).

A :class:`WorldPool` holds rendered examples in flat numpy arrays and refreshes a few of them each step, so
training sees a stream of new layouts without rendering a whole batch per step on a 2-core machine.

Each pool entry is one prompt spec with two renders:
- ``pos``: a layout that satisfies the spec (generation target; understanding "yes");
- ``neg``: a layout of ``perturb_spec(spec)``, a near miss that contradicts the prompt (understanding "no").
Both come with a per-pixel object-id map, so dense labels (object / colour / shape / texture per patch)
exist for either render and for crops of them.

Understanding images are degraded at random (blur, noise, partially-noised ``x_t`` at small ``t``,
brightness shifts) so the judge stays accurate on the model's own blurry generations.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..world import render as world_render
from ..world import spec as world_spec

logger = logging.getLogger(__name__)

IGNORE = -100
#: A patch counts as part of an object when the object covers at least this fraction of it.
OBJECT_COVERAGE = 0.15
MAX_OBJECTS = world_spec.MAX_OBJECTS


def world_classes() -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``(colors, shapes, textures)`` class names of the per-patch heads, in head order."""
    return tuple(world_spec.COLORS), tuple(world_spec.SHAPES), tuple(world_spec.TEXTURES)


def image_to_tensor(images: Sequence) -> torch.Tensor:
    """PIL RGB images (or ``(H, W, 3)`` uint8 arrays) → ``(B, 3, H, W)`` float32 in [-1, 1]."""
    arr = np.stack([np.asarray(im.convert("RGB") if hasattr(im, "convert") else im, dtype=np.uint8) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] → ``(B, H, W, 3)`` uint8 (rounded, clamped)."""
    x = ((images.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def object_id_map(scene) -> np.ndarray:
    """``(S, S)`` int8: 0 background, ``k + 1`` where object ``k`` covers at least half the pixel."""
    masks = world_render.render_masks(scene)
    out = np.zeros((scene.size, scene.size), dtype=np.int8)
    if len(masks):
        best = masks.argmax(0)
        out[:] = np.where(masks.max(0) >= 0.5, best + 1, 0)
    return out


def object_attributes(scene, colors: Sequence[str], shapes: Sequence[str], textures: Sequence[str]) -> np.ndarray:
    """``(MAX_OBJECTS + 1, 4)`` int64 class ids ``[color, shape, texture, size]`` (size indexes
    ``world.spec.SIZES``); row 0 (background) is IGNORE."""
    table = np.full((MAX_OBJECTS + 1, 4), IGNORE, dtype=np.int64)
    for k, obj in enumerate(scene.objects):
        table[k + 1] = (colors.index(obj.color), shapes.index(obj.shape), textures.index(obj.texture),
                        world_spec.SIZES.index(obj.size))
    return table


def patch_labels(id_maps: torch.Tensor, attrs: torch.Tensor, patch: int) -> dict[str, torch.Tensor]:
    """Dense labels per patch from pixel object-id maps.

    ``id_maps``: ``(B, S, S)`` long (0 background, k+1 object k); ``attrs``: ``(B, K+1, A)`` long with A = 3
    (colour, shape, texture) or 4 (… and size).
    Returns ``object (B, N)`` float in {0, 1} and ``color``/``shape``/``texture`` (and ``size`` when A = 4)
    ``(B, N)`` long with IGNORE on background patches. N = (S / patch)², row-major.
    """
    k1 = attrs.shape[1]
    onehot = F.one_hot(id_maps.long(), k1).permute(0, 3, 1, 2).float()  # B, K+1, S, S
    cover = F.avg_pool2d(onehot, patch).flatten(2)  # B, K+1, N
    fg = 1.0 - cover[:, 0]
    best = cover[:, 1:].argmax(1) + 1  # B, N: the object covering most of the patch
    is_obj = fg >= OBJECT_COVERAGE
    picked = torch.gather(attrs, 1, best[..., None].expand(-1, -1, attrs.shape[-1]))  # B, N, A
    picked = torch.where(is_obj[..., None], picked, torch.full_like(picked, IGNORE))
    out = {"object": is_obj.float(), "color": picked[..., 0], "shape": picked[..., 1], "texture": picked[..., 2]}
    if attrs.shape[-1] > 3:
        out["size"] = picked[..., 3]
    return out


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


def degrade(images: torch.Tensor, gen: torch.Generator, p_clean: float = 0.35) -> torch.Tensor:
    """Random degradations per image (``(B, 3, H, W)`` in [-1, 1]): blur, noise, ``x_t`` mixing, brightness."""
    out = []
    for img in images:
        x = img[None]
        if torch.rand((), generator=gen).item() >= p_clean:
            if torch.rand((), generator=gen).item() < 0.5:
                x = gaussian_blur(x, 0.4 + 1.2 * torch.rand((), generator=gen).item())
            if torch.rand((), generator=gen).item() < 0.4:
                # A partially-noised flow state at small t, like an under-converged sample.
                t = 0.05 + 0.3 * torch.rand((), generator=gen).item()
                x = (1 - t) * x + t * torch.randn(x.shape, generator=gen)
            if torch.rand((), generator=gen).item() < 0.4:
                x = x + (0.02 + 0.1 * torch.rand((), generator=gen).item()) * torch.randn(x.shape, generator=gen)
            if torch.rand((), generator=gen).item() < 0.3:
                x = x + 0.1 * (torch.rand((1, 3, 1, 1), generator=gen) - 0.5)
        out.append(x.clamp(-1, 1))
    return torch.cat(out)


@dataclass(frozen=True)
class PoolConfig:
    """Size and refresh rate of the rendered pool; ``val_fraction`` of entries use validation-split prompts
    (understanding only: the generator never trains on them)."""

    size: int = 2500
    refresh_per_step: int = 6
    val_fraction: float = 0.3
    n_prompts: int = 4000

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size={self.size}: the pool needs at least 8 entries")
        if not 0 <= self.refresh_per_step <= self.size:
            raise ValueError("refresh_per_step must lie between 0 and the pool size")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must lie in [0, 1)")


class WorldPool:
    """Rendered (prompt, positive render, negative render) entries with dense labels, refreshed in place.

    Arrays: ``images (M, 2, S, S, 3)`` uint8 (slot 0 positive, 1 negative), ``ids (M, 2, S, S)`` int8,
    ``attrs (M, 2, K+1, 3)`` int64, ``texts`` (M prompt strings), ``is_train (M,)`` bool.
    """

    def __init__(self, config: PoolConfig, seed: int, size: int = world_spec.IMAGE_SIZE):
        from ..world import prompts as world_prompts

        self.config = config
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.colors, self.shapes, self.textures = world_classes()
        n_val = int(round(config.n_prompts * config.val_fraction))
        self.train_specs = world_prompts.make_prompts("train", None, config.n_prompts - n_val, seed)
        self.val_specs = world_prompts.make_prompts("val", None, max(n_val, 1), seed + 1) if n_val else []
        self._perturb = world_prompts.perturb_spec
        m = config.size
        self.images = np.zeros((m, 2, size, size, 3), dtype=np.uint8)
        self.ids = np.zeros((m, 2, size, size), dtype=np.int8)
        self.attrs = np.full((m, 2, MAX_OBJECTS + 1, 4), IGNORE, dtype=np.int64)
        self.texts: list[str] = [""] * m
        self.is_train = np.zeros(m, dtype=bool)
        self._next = 0
        for i in range(m):
            self._fill(i)

    def _fill(self, i: int) -> None:
        use_val = self.val_specs and self.rng.random() < self.config.val_fraction
        specs = self.val_specs if use_val else self.train_specs
        spec = specs[int(self.rng.integers(len(specs)))]
        neg = self._perturb(spec, self.rng)
        for slot, s in enumerate((spec, neg)):
            scene = world_render.sample_scene(s, self.rng, size=self.size)
            self.images[i, slot] = np.asarray(world_render.render_scene(scene), dtype=np.uint8)
            self.ids[i, slot] = object_id_map(scene)
            self.attrs[i, slot] = object_attributes(scene, self.colors, self.shapes, self.textures)
        self.texts[i] = spec.text
        self.is_train[i] = not use_val

    def refresh(self) -> None:
        """Re-render the next ``refresh_per_step`` entries (round robin)."""
        for _ in range(self.config.refresh_per_step):
            self._fill(self._next)
            self._next = (self._next + 1) % self.config.size

    def generation_batch(self, n: int) -> tuple[list[str], torch.Tensor]:
        """``(texts, images (n, 3, S, S) in [-1, 1])`` of positive renders of training-split prompts."""
        train_idx = np.flatnonzero(self.is_train)
        pick = train_idx[self.rng.integers(len(train_idx), size=n)]
        return [self.texts[i] for i in pick], image_to_tensor(list(self.images[pick, 0]))

    def understanding_batch(
        self, n: int, patch: int, gen: torch.Generator, crop_p: float = 0.3, easy_negative_p: float = 0.25
    ) -> dict[str, torch.Tensor | list[str]]:
        """Images (degraded), texts, yes labels and dense patch labels.

        Half positives (render of the prompt), half negatives: a render of a perturbed prompt under the original
        text, or (``easy_negative_p`` of them) another entry's positive render.
        A ``crop_p`` share are crops around one object, resized to the full input (the judge's crop view);
        their yes label is ignored (``yes_mask`` 0) because a crop does not show the whole layout, and so is their
        size label (a resized crop shows no absolute size).
        """
        pick = self.rng.integers(self.config.size, size=n)
        slot = (self.rng.random(n) < 0.5).astype(np.int64)  # 0 = positive, 1 = negative
        # Some negatives are easy (another prompt's positive render): they get the yes head off its plateau
        # before it can tell near misses apart.
        source = pick.copy()
        easy = (slot == 1) & (self.rng.random(n) < easy_negative_p)
        source[easy] = self.rng.integers(self.config.size, size=int(easy.sum()))
        img_slot = np.where(easy, 0, slot)
        images = image_to_tensor(list(self.images[source, img_slot]))
        ids = torch.from_numpy(self.ids[source, img_slot].astype(np.int64))
        attrs = torch.from_numpy(self.attrs[source, img_slot])
        yes_mask = torch.ones(n)
        cropped = torch.zeros(n, dtype=torch.bool)
        for row in range(n):
            if self.rng.random() >= crop_p:
                continue
            present = [k for k in range(1, MAX_OBJECTS + 1) if int(attrs[row, k, 0]) != IGNORE]
            if not present:
                continue
            k = present[int(self.rng.integers(len(present)))]
            ys, xs = np.nonzero(self.ids[source[row], img_slot[row]] == k)
            if len(xs) == 0:
                continue
            box = crop_box(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, self.size, self.rng)
            images[row], ids[row] = crop_resize(images[row], ids[row], box, self.size)
            yes_mask[row] = 0.0
            cropped[row] = True
        labels = patch_labels(ids, attrs, patch)
        if "size" in labels:
            labels["size"][cropped] = IGNORE
        return {
            "texts": [self.texts[i] for i in pick],
            "images": degrade(images, gen),
            "yes": torch.from_numpy(1.0 - slot.astype(np.float32)),
            "yes_mask": yes_mask,
            **labels,
        }


def crop_box(x1: int, y1: int, x2: int, y2: int, size: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """A square-ish box around an object's pixel box with a random margin (0–50% of its side), clamped."""
    side = max(x2 - x1, y2 - y1)
    margin = int(round(side * rng.uniform(0.0, 0.5))) + 1
    return (max(0, x1 - margin), max(0, y1 - margin), min(size, x2 + margin), min(size, y2 + margin))


def crop_resize(
    image: torch.Tensor, ids: torch.Tensor | None, box: tuple[int, int, int, int], size: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Cut ``box`` out of ``image (3, S, S)`` (and its id map) and resize it back to ``size`` x ``size``
    (bilinear for the image, nearest for the ids)."""
    x1, y1, x2, y2 = box
    crop = image[:, y1:y2, x1:x2][None]
    crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False)[0]
    if ids is None:
        return crop, None
    idc = ids[y1:y2, x1:x2][None, None].float()
    idc = F.interpolate(idc, size=(size, size), mode="nearest")[0, 0].long()
    return crop, idc
