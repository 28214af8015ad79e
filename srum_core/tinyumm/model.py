"""TinyUMM v2: a miniature of BAGEL's mixture-of-transformers that draws and understands 64×64 world images.

One packed sequence, two experts, shared attention (BAGEL's MoT):

- **text** — the prompt, then optionally a *plan* ``[<think>, object, …, </think>]`` — always runs through the
  understanding expert, as a prefix-LM: prompt tokens see the whole prompt, plan tokens see the prompt and the
  plan so far (so the planner heads can write the plan one object at a time, and text never sees an image).
- **understanding stream** ``[image patches | <ask> | region queries]`` (raw 8×8 pixel patches, like BAGEL's
  ViT path) runs through the understanding expert and attends to the prompt and to the image: the ``<ask>`` head
  answers "does this image show the prompt?" (the global judge), each region query (a box) answers "is the object
  in this box one the prompt asks for?" and names it, and per-patch heads say what covers each patch (the
  model's own grounding).
- **generation stream**: noisy image patches (rectified flow, ``x_t = (1 - t)·x0 + t·ε``) run through the
  generation expert — its own QKV/out projections, MLPs and adaLN norms modulated by the timestep — and attend
  to the text (prompt, or prompt + plan in *think* mode) and to themselves; an x0 head gives the velocity.

Every parameter belongs to exactly one of ``self.und`` (understanding expert: text and plan embeddings, the
pixel-patch embedding, its transformer weights and every understanding head) and ``self.gen`` (generation
expert). Because text never attends to the generation stream, an update of ``self.gen`` leaves every
understanding output — judgements, plans, groundings — bit-identical, which is what lets a SRUM round train the
generation expert while the judge stays frozen.

Shapes: ``ids``/``mask`` ``(B, L)``; ``plan`` ``(B, Q, 5)`` long fields ``[slot, colour, shape, size, texture]``
with ``plan_mask (B, Q)``; ``patches (B, N, P)`` with ``N = (S/p)²`` row-major patches of ``P = 3·p²`` values in
[-1, 1]; ``t (B,)`` in [0, 1]; ``boxes (B, R, 4)`` pixel boxes with ``box_mask (B, R)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

#: Linear layers of a transformer expert, as peft ``target_modules`` (suffix match on module names).
EXPERT_LINEARS: tuple[str, ...] = ("to_qkv", "to_out", "fc1", "fc2")
#: Plan fields, in the order of the last axis of a plan tensor.
PLAN_FIELDS: tuple[str, ...] = ("slot", "color", "shape", "size", "texture")


def patchify(images: torch.Tensor, patch: int) -> torch.Tensor:
    """``(B, C, H, W)`` → ``(B, N, C·p·p)`` row-major patches (N = (H/p)·(W/p))."""
    b, c, h, w = images.shape
    x = images.reshape(b, c, h // patch, patch, w // patch, patch)
    x = x.permute(0, 2, 4, 1, 3, 5)  # B, rows, cols, C, p, p
    return x.reshape(b, (h // patch) * (w // patch), c * patch * patch)


def unpatchify(patches: torch.Tensor, patch: int, size: int, channels: int = 3) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``(B, N, C·p·p)`` → ``(B, C, size, size)``."""
    b = patches.shape[0]
    g = size // patch
    x = patches.reshape(b, g, g, channels, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(b, channels, size, size)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal features of ``t`` in [0, 1] (scaled to 0..1000 like the flow scheduler's timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """``(grid², dim)`` fixed 2-D sin-cos position codes, row-major (half the channels for y, half for x)."""
    quarter = dim // 4
    omega = 1.0 / (10_000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    pos = torch.arange(grid, dtype=torch.float32)
    y, x = torch.meshgrid(pos, pos, indexing="ij")
    parts = []
    for coord in (y.reshape(-1), x.reshape(-1)):
        angles = coord[:, None] * omega[None]
        parts += [torch.sin(angles), torch.cos(angles)]
    out = torch.cat(parts, dim=1)
    return F.pad(out, (0, dim - out.shape[1]))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class ExpertLayer(nn.Module):
    """One expert's weights in one layer: pre-norms, QKV and output projections, MLP.

    ``adaptive``: the norms are modulated by a conditioning vector (adaLN-Zero, DiT) — the generation expert,
    conditioned on the timestep; otherwise plain affine LayerNorms (the understanding expert).
    """

    def __init__(self, dim: int, heads: int, mlp_ratio: float, adaptive: bool):
        super().__init__()
        self.heads = heads
        self.adaptive = adaptive
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=not adaptive, eps=1e-6)
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=not adaptive, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        if adaptive:
            self.ada = nn.Linear(dim, 6 * dim)
            nn.init.zeros_(self.ada.weight)
            nn.init.zeros_(self.ada.bias)

    def modulation(self, cond: torch.Tensor | None) -> tuple[torch.Tensor, ...] | None:
        if not self.adaptive:
            return None
        return tuple(m[:, None] for m in self.ada(F.silu(cond)).chunk(6, dim=-1))

    def qkv(self, x: torch.Tensor, mod) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, S, d)`` → q, k, v each ``(B, H, S, d/H)``."""
        h = self.norm1(x)
        if mod is not None:
            h = h * (1 + mod[1]) + mod[0]
        b, s, d = x.shape
        q, k, v = self.to_qkv(h).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        return q, k, v

    def finish(self, x: torch.Tensor, attn: torch.Tensor, mod) -> torch.Tensor:
        """Residual updates after attention: ``attn (B, H, S, d/H)`` → new ``x (B, S, d)``."""
        b, _, s, _ = attn.shape
        out = self.to_out(attn.transpose(1, 2).reshape(b, s, -1))
        if mod is None:
            x = x + out
            return x + self.mlp(self.norm2(x))
        x = x + mod[2] * out
        h = self.norm2(x) * (1 + mod[4]) + mod[3]
        return x + mod[5] * self.mlp(h)


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention in float32 (``mask`` True = may attend), also under CPU bf16 autocast:
    PyTorch's bf16 attention backward on CPU is several times slower than float32."""
    with torch.autocast(q.device.type, enabled=False):
        return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask)


@dataclass
class TextStates:
    """The text prefix after the understanding expert: per-layer keys/values ``(B, H, L, d/H)`` that the image
    streams attend to, the final hidden states ``(B, L, d)`` (read by the planner heads), and ``keys (B, L)``:
    which positions an image stream may attend to (real prompt tokens, plus the plan in think mode)."""

    kv: list[tuple[torch.Tensor, torch.Tensor]]
    hidden: torch.Tensor
    keys: torch.Tensor
    n_prompt: int

    def only_prompt(self) -> TextStates:
        """The same states with the plan hidden from the image streams (understanding never sees a plan)."""
        keys = self.keys.clone()
        keys[:, self.n_prompt :] = False
        return TextStates(self.kv, self.hidden, keys, self.n_prompt)


class UnderstandingExpert(nn.Module):
    """Text and plan embeddings, the pixel-patch embedding, the understanding transformer weights and heads."""

    def __init__(self, cfg) -> None:
        super().__init__()
        d = cfg["d_model"]
        n_c, n_s, n_t, n_z = len(cfg["colors"]), len(cfg["shapes"]), len(cfg["textures"]), len(cfg["sizes"])
        self.text_embed = nn.Embedding(len(cfg["vocab"]), d)
        self.text_pos = nn.Parameter(torch.randn(cfg["max_text_len"], d) * 0.02)
        # Plan tokens: a sum of field embeddings. Slot index N_SLOTS is "end" (</think>), N_SLOTS + 1 is <think>;
        # the attribute tables have one extra row, "none" (the markers carry no attributes).
        n_slots = cfg["n_slots"]
        self.plan_slot = nn.Embedding(n_slots + 2, d)
        self.plan_color = nn.Embedding(n_c + 1, d)
        self.plan_shape = nn.Embedding(n_s + 1, d)
        self.plan_size = nn.Embedding(n_z + 1, d)
        self.plan_texture = nn.Embedding(n_t + 1, d)
        self.plan_pos = nn.Parameter(torch.randn(cfg["max_plan_len"], d) * 0.02)
        p = cfg["patch_size"]
        grid = cfg["image_size"] // p
        self.patch_in = nn.Linear(cfg["channels"] * p * p, d)
        self.image_pos = nn.Parameter(sincos_2d(grid, d))
        self.ask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.region_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.box_in = nn.Sequential(nn.Linear(4, d), nn.SiLU(), nn.Linear(d, d))
        self.layers = nn.ModuleList(
            ExpertLayer(d, cfg["n_heads"], cfg["mlp_ratio"], adaptive=False) for _ in range(cfg["n_layers"])
        )
        self.norm_out = nn.LayerNorm(d, eps=1e-6)
        # Heads.
        self.yes_head = nn.Linear(d, 1)
        self.object_head = nn.Linear(d, 1)
        self.color_head = nn.Linear(d, n_c)
        self.shape_head = nn.Linear(d, n_s)
        self.texture_head = nn.Linear(d, n_t)
        self.size_head = nn.Linear(d, n_z)
        self.region_yes = nn.Linear(d, 1)
        self.region_object = nn.Linear(d, 1)
        self.region_color = nn.Linear(d, n_c)
        self.region_shape = nn.Linear(d, n_s)
        self.region_texture = nn.Linear(d, n_t)
        self.region_size = nn.Linear(d, n_z)
        self.next_slot = nn.Linear(d, n_slots + 1)  # + end
        self.next_color = nn.Linear(d, n_c)
        self.next_shape = nn.Linear(d, n_s)
        self.next_size = nn.Linear(d, n_z)
        self.next_texture = nn.Linear(d, n_t)


class GenerationExpert(nn.Module):
    """The noisy-patch embedding, timestep embedder, generation transformer weights and the x0 head."""

    def __init__(self, cfg) -> None:
        super().__init__()
        d = cfg["d_model"]
        p = cfg["patch_size"]
        grid = cfg["image_size"] // p
        patch_dim = cfg["channels"] * p * p
        self.patch_in = nn.Linear(patch_dim, d)
        # 2-D sin-cos initialisation (DiT): at high noise the patch content is pure noise of unit scale, so a small
        # random position code would be drowned and patches could not tell where they are.
        self.image_pos = nn.Parameter(sincos_2d(grid, d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        # The plan as a layout: what the plan puts on each slot, added to that slot's token (think mode; GLIGEN-
        # style layout conditioning). State 0 = no plan (plain mode), 1 = an empty slot, 2 = an object there.
        n_c, n_s, n_t, n_z = len(cfg["colors"]), len(cfg["shapes"]), len(cfg["textures"]), len(cfg["sizes"])
        self.layout_state = nn.Embedding(3, d)
        self.layout_color = nn.Embedding(n_c + 1, d)
        self.layout_shape = nn.Embedding(n_s + 1, d)
        self.layout_size = nn.Embedding(n_z + 1, d)
        self.layout_texture = nn.Embedding(n_t + 1, d)
        for emb in (self.layout_state, self.layout_color, self.layout_shape, self.layout_size, self.layout_texture):
            nn.init.normal_(emb.weight, std=0.02)
        self.layers = nn.ModuleList(
            ExpertLayer(d, cfg["n_heads"], cfg["mlp_ratio"], adaptive=True) for _ in range(cfg["n_layers"])
        )
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.ada_out.weight)
        nn.init.zeros_(self.ada_out.bias)
        self.x0_head = nn.Linear(d, patch_dim)
        nn.init.zeros_(self.x0_head.weight)
        nn.init.zeros_(self.x0_head.bias)


class TinyUMM(ModelMixin, ConfigMixin):
    """The MoT unified model (see the module docstring). Saved/loaded as ``config.json`` + safetensors.

    ``vocab``: the tokenizer's words (specials first); ``colors``/``shapes``/``textures``/``sizes``: class names
    of the heads and plan fields, in order; ``n_slots``: slots of the world's grid (``grid_size`` per side);
    ``max_plan_len``: plan tokens including ``<think>`` and ``</think>``.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        vocab: tuple[str, ...] | list[str] = ("<pad>", "<bos>"),
        colors: tuple[str, ...] | list[str] = ("red",),
        shapes: tuple[str, ...] | list[str] = ("circle",),
        textures: tuple[str, ...] | list[str] = ("solid",),
        sizes: tuple[str, ...] | list[str] = ("small",),
        max_text_len: int = 18,
        max_plan_len: int = 6,
        image_size: int = 64,
        patch_size: int = 16,
        channels: int = 3,
        grid_size: int = 4,
        d_model: int = 160,
        n_layers: int = 6,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        t_clip: float = 0.05,
        flow_shift: float = 3.0,
        version: int = 2,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        if (image_size // patch_size) % grid_size:
            raise ValueError(f"the {grid_size}x{grid_size} slot grid must align with the patch grid")
        cfg = dict(self.config)
        cfg["n_slots"] = grid_size * grid_size
        self.grid = image_size // patch_size
        self.n_patches = self.grid * self.grid
        self.patch_dim = channels * patch_size * patch_size
        self.n_slots = grid_size * grid_size
        self.und = UnderstandingExpert(cfg)
        self.gen = GenerationExpert(cfg)

    # ------------------------------------------------------------------------------------------------ text
    def plan_embedding(self, plan: torch.Tensor) -> torch.Tensor:
        """``(B, Q, 5)`` plan fields → ``(B, Q, d)`` token embeddings."""
        u = self.und
        return (u.plan_slot(plan[..., 0]) + u.plan_color(plan[..., 1]) + u.plan_shape(plan[..., 2])
                + u.plan_size(plan[..., 3]) + u.plan_texture(plan[..., 4]))

    def encode_text(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        plan: torch.Tensor | None = None,
        plan_mask: torch.Tensor | None = None,
    ) -> TextStates:
        """Run the prompt (and plan) through the understanding expert as a prefix-LM."""
        u = self.und
        b, length = ids.shape
        x = u.text_embed(ids) + u.text_pos[:length]
        keys = mask
        if plan is not None:
            q = plan.shape[1]
            x = torch.cat([x, self.plan_embedding(plan) + u.plan_pos[:q]], dim=1)
            keys = torch.cat([mask, plan_mask], dim=1)
        total = x.shape[1]
        # Prefix-LM: every position sees the real prompt tokens; plan position j also sees plan positions ≤ j.
        allowed = keys[:, None, :].expand(b, total, total).clone()
        if plan is not None:
            causal = torch.ones(total - length, total - length, dtype=torch.bool, device=ids.device).tril()
            allowed[:, :, length:] &= F.pad(causal, (0, 0, length, 0), value=False)[None]
        allowed |= torch.eye(total, dtype=torch.bool, device=ids.device)[None]  # padding rows attend to themselves
        attn_mask = allowed[:, None]
        kv = []
        for layer in u.layers:
            q_, k_, v_ = layer.qkv(x, None)
            kv.append((k_, v_))
            x = layer.finish(x, attend(q_, k_, v_, attn_mask), None)
        return TextStates(kv=kv, hidden=u.norm_out(x), keys=keys, n_prompt=length)

    def _stream(self, text: TextStates, x: torch.Tensor, layers, cond, self_mask: torch.Tensor) -> torch.Tensor:
        """Run an image stream ``x (B, S, d)`` through ``layers``, attending to ``text`` and (by ``self_mask
        (S, S)``) to itself."""
        b, s, _ = x.shape
        mask = torch.cat([text.keys[:, None, :].expand(b, s, -1), self_mask[None].expand(b, -1, -1)], dim=2)[:, None]
        for layer, (tk, tv) in zip(layers, text.kv):
            mod = layer.modulation(cond)
            q, k, v = layer.qkv(x, mod)
            out = attend(q, torch.cat([tk.to(k.dtype), k], dim=2), torch.cat([tv.to(v.dtype), v], dim=2), mask)
            x = layer.finish(x, out.to(x.dtype), mod)
        return x

    # ---------------------------------------------------------------------------------------------- heads
    def plan_logits(self, text: TextStates) -> dict[str, torch.Tensor]:
        """Next-object logits at every plan position ``(B, Q, ·)``: slot (+ end), colour, shape, size, texture."""
        h = text.hidden[:, text.n_prompt :]
        u = self.und
        return {"slot": u.next_slot(h), "color": u.next_color(h), "shape": u.next_shape(h), "size": u.next_size(h),
                "texture": u.next_texture(h)}

    def understand(
        self,
        text: TextStates,
        patches: torch.Tensor,
        boxes: torch.Tensor | None = None,
        box_mask: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """The understanding stream on clean pixel ``patches (B, N, P)`` given the prompt.

        Returns ``yes (B,)``; per patch ``object (B, N)``, ``color``/``shape``/``texture``/``size`` ``(B, N, ·)``;
        and with ``boxes (B, R, 4)`` (pixels) per region ``region_yes``/``region_object (B, R)`` and
        ``region_color``/``region_shape``/``region_texture``/``region_size`` ``(B, R, ·)``.
        """
        u = self.und
        text = text.only_prompt()
        b, n, _ = patches.shape
        img = u.patch_in(patches) + u.image_pos
        parts = [img, u.ask_token.expand(b, 1, -1)]
        r = 0
        if boxes is not None and boxes.shape[1] > 0:
            r = boxes.shape[1]
            parts.append(self._region_queries(img, boxes))
        x = torch.cat(parts, dim=1)
        s = n + 1 + r
        self_mask = torch.zeros(s, s, dtype=torch.bool, device=x.device)
        self_mask[:, :n] = True  # every stream token sees the image
        idx = torch.arange(n, s, device=x.device)
        self_mask[idx, idx] = True  # <ask> and each region query also see themselves, not each other
        x = u.norm_out(self._stream(text, x, u.layers, None, self_mask))
        img_out, ask = x[:, :n], x[:, n]
        out = {
            "yes": u.yes_head(ask).squeeze(-1),
            "object": u.object_head(img_out).squeeze(-1),
            "color": u.color_head(img_out),
            "shape": u.shape_head(img_out),
            "texture": u.texture_head(img_out),
            "size": u.size_head(img_out),
        }
        if r:
            reg = x[:, n + 1 :]
            out.update(
                region_yes=u.region_yes(reg).squeeze(-1), region_object=u.region_object(reg).squeeze(-1),
                region_color=u.region_color(reg), region_shape=u.region_shape(reg),
                region_texture=u.region_texture(reg), region_size=u.region_size(reg),
            )
        return out

    def _region_queries(self, img: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        """``(B, R, d)`` queries: a region token + the box's coordinates + the mean patch embedding under it."""
        u = self.und
        size = float(self.config.image_size)
        p = self.config.patch_size
        edges = torch.arange(self.grid + 1, device=img.device, dtype=img.dtype) * p
        b = boxes.to(img.dtype)
        fx = (torch.minimum(edges[1:], b[..., 2:3]) - torch.maximum(edges[:-1], b[..., 0:1])).clamp(0, p) / p
        fy = (torch.minimum(edges[1:], b[..., 3:4]) - torch.maximum(edges[:-1], b[..., 1:2])).clamp(0, p) / p
        cover = (fy[..., :, None] * fx[..., None, :]).flatten(2)  # (B, R, N) share of each patch inside the box
        pooled = cover @ img / cover.sum(-1, keepdim=True).clamp(min=1e-6)
        return u.region_token + u.box_in(b / size * 2 - 1) + pooled

    def velocity(
        self, text: TextStates, x_t: torch.Tensor, t: torch.Tensor, layout: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The generation stream: velocity ``(B, N, P)`` of the flow at ``x_t`` and time ``t (B,)``.

        ``layout (B, N, 5)``: the plan per token ``[state, colour, shape, size, texture]`` (see
        :meth:`layout_embedding`); None (plain mode) adds the "no plan" state everywhere.
        """
        g = self.gen
        d = self.config.d_model
        cond = g.time_mlp(timestep_embedding(t, d).to(g.image_pos.dtype))
        if layout is None:
            layout = torch.zeros(x_t.shape[0], x_t.shape[1], 5, dtype=torch.long, device=x_t.device)
            layout[..., 1:] = torch.tensor(self._none_fields(), device=x_t.device)
        x = g.patch_in(x_t) + g.image_pos + self.layout_embedding(layout)
        n = x.shape[1]
        self_mask = torch.ones(n, n, dtype=torch.bool, device=x.device)
        x = self._stream(text, x, g.layers, cond, self_mask)
        shift, scale = g.ada_out(F.silu(cond)).chunk(2, dim=-1)
        h = g.norm_out(x) * (1 + scale[:, None]) + shift[:, None]
        x0 = g.x0_head(h)
        # x-prediction (Li & He 2025, "Back to Basics"): a patch holds 192 values but the stream only d_model;
        # clean patches live on a low-dimensional set and pass that bottleneck, noise does not. The velocity
        # follows from x_t = (1 - t)·x0 + t·ε: v = (x_t - x0) / t, with t clipped away from 0.
        return (x_t - x0) / t.clamp(min=self.config.t_clip)[:, None, None].to(x0.dtype)

    def _none_fields(self) -> list[int]:
        cfg = self.config
        return [len(cfg.colors), len(cfg.shapes), len(cfg.sizes), len(cfg.textures)]

    def layout_embedding(self, layout: torch.Tensor) -> torch.Tensor:
        """``(B, N, 5)`` per-token plan fields ``[state, colour, shape, size, texture]`` → ``(B, N, d)``."""
        g = self.gen
        return (g.layout_state(layout[..., 0]) + g.layout_color(layout[..., 1]) + g.layout_shape(layout[..., 2])
                + g.layout_size(layout[..., 3]) + g.layout_texture(layout[..., 4]))

    def expert_parameters(self, part: str) -> list[nn.Parameter]:
        """``"gen"``: the generation expert's parameters; ``"und"``: the understanding expert's; ``"all"``."""
        if part == "gen":
            return list(self.gen.parameters())
        if part == "und":
            return list(self.und.parameters())
        if part == "all":
            return list(self.parameters())
        raise ValueError(f"part={part!r}: choose 'gen', 'und' or 'all'")


def flow_timesteps(batch: int, generator: torch.Generator | None, shift: float = 1.0) -> torch.Tensor:
    """Training timesteps ``t = sigmoid(n), n ~ N(0, 1)`` (logit-normal, SD3 / SRUM_SPEC §1.7), then shifted
    ``t' = s·t / (1 + (s - 1)·t)`` as the flow scheduler shifts its sigmas. ``(batch,)`` float32 on CPU."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    t = compute_density_for_timestep_sampling(
        "logit_normal", batch_size=batch, logit_mean=0.0, logit_std=1.0, generator=generator
    )
    if shift != 1.0:
        t = shift * t / (1 + (shift - 1) * t)
    return t.float()
