"""TinyUMM: one small transformer trunk that both draws and understands 64×64 sandbox images.

A miniature of the BAGEL / Transfusion recipe: a single sequence ``[text tokens | <ask> | image patches]``
goes through ONE stack of transformer blocks; what differs between the two abilities is only the input and
which head reads the output.

- generation (``mode=0``): image tokens are noisy patches ``x_t = (1 - t)·x0 + t·ε`` (rectified flow,
  SRUM_SPEC §1.7) and the velocity head predicts ``ε - x0`` per patch; ``t`` and the pooled prompt enter every
  block through adaLN-Zero modulation (DiT), the prompt tokens also through joint attention.
- understanding (``mode=1``): image tokens are a clean (or degraded) image; the ``<ask>`` token's head
  answers "does this image match the prompt?" (a yes logit) and per-patch heads say whether a patch belongs to
  an object and which colour / shape / texture it has (used for self-grounding and naming regions).

Shapes: ``text_ids``/``text_mask`` ``(B, L)``; ``patches`` ``(B, N, P)`` with ``N = (S / p)²`` patches of
``P = 3·p²`` values in [-1, 1]; ``t`` ``(B,)`` in [0, 1]; ``mode`` ``(B,)`` long.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from diffusers import ConfigMixin, ModelMixin
from diffusers.configuration_utils import register_to_config
from torch import nn

#: Linear layers of the shared trunk, as peft ``target_modules`` (suffix match on module names).
TRUNK_LINEARS: tuple[str, ...] = ("to_qkv", "to_out", "fc1", "fc2")


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
    return torch.nn.functional.pad(out, (0, dim - out.shape[1]))


def _modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale[:, None]) + shift[:, None]


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.to_qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        # Attention itself always runs in float32: under CPU bf16 autocast (training) the projections gain from
        # bf16 matmuls, but PyTorch's bf16 flash-attention backward on CPU is several times slower than fp32.
        with torch.autocast(x.device.type, enabled=False):
            out = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=attn_mask)
        return self.to_out(out.transpose(1, 2).reshape(b, n, d))


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class Block(nn.Module):
    """Pre-norm transformer block with adaLN-Zero modulation from the conditioning vector (DiT, Peebles & Xie)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.ada = nn.Linear(dim, 6 * dim)
        nn.init.zeros_(self.ada.weight)
        nn.init.zeros_(self.ada.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        s1, c1, g1, s2, c2, g2 = self.ada(F.silu(cond)).chunk(6, dim=-1)
        x = x + g1[:, None] * self.attn(_modulate(self.norm1(x), s1, c1), attn_mask)
        return x + g2[:, None] * self.mlp(_modulate(self.norm2(x), s2, c2))


#: Spatial down-sampling of the latent codec (64×64 pixels → 16×16 latent cells).
LATENT_DOWN = 4


def _conv(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel, stride, padding=1 if stride == 2 else (kernel - 1) // 2)


class LatentCodec(nn.Module):
    """A small convolutional autoencoder: ``(B, 3, S, S)`` ↔ ``(B, C, S/4, S/4)`` (the "small learned latent").

    Pixel patches hold 192 values per token, which a 1-M-parameter trunk cannot denoise into clean edges: its
    per-patch errors show up as ragged, blocky shapes. The codec moves the flow onto 16 values per token, and its
    convolutional decoder draws the smooth edges. It is trained first (reconstruction, with noise on the latent so
    the decoder forgives an imperfect sample), then frozen; ``latent_mean``/``latent_std`` normalise the latent
    per channel to unit scale, like the scaling factor of a latent-diffusion VAE.
    """

    def __init__(self, channels: int, latent_channels: int, width: int):
        super().__init__()
        w = width
        self.encoder = nn.Sequential(
            _conv(channels, w), nn.SiLU(), _conv(w, w, 4, 2), nn.SiLU(), _conv(w, 2 * w, 4, 2), nn.SiLU(),
            _conv(2 * w, 2 * w), nn.SiLU(), nn.Conv2d(2 * w, latent_channels, 1),
        )
        self.decoder = nn.Sequential(
            _conv(latent_channels, 2 * w), nn.SiLU(), _conv(2 * w, 2 * w), nn.SiLU(), _conv(2 * w, 2 * w), nn.SiLU(),
            nn.Upsample(scale_factor=2), _conv(2 * w, w), nn.SiLU(), nn.Upsample(scale_factor=2), _conv(w, w), nn.SiLU(),
            _conv(w, channels),
        )
        self.register_buffer("latent_mean", torch.zeros(latent_channels))
        self.register_buffer("latent_std", torch.ones(latent_channels))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised latent ``(B, C, S/4, S/4)`` of images in [-1, 1]."""
        z = self.encoder(images)
        return (z - self.latent_mean[:, None, None]) / self.latent_std[:, None, None]

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Images ``(B, 3, S, S)`` (not clamped) from a normalised latent."""
        return self.decoder(latent * self.latent_std[:, None, None] + self.latent_mean[:, None, None])


class TinyUMM(ModelMixin, ConfigMixin):
    """The shared-trunk unified model. Saved/loaded as ``config.json`` + safetensors via diffusers.

    ``vocab``: the tokenizer's word list (specials first), stored in the config so a checkpoint is
    self-describing; ``colors``/``shapes``/``textures``/``sizes``: class names of the per-patch heads, in order
    (empty ``sizes``: no size head, as in checkpoints written before it existed).
    ``latent_channels``: 0 → image tokens are raw pixel patches; ``C > 0`` → a :class:`LatentCodec` maps images
    to a ``C``-channel latent at 1/4 resolution and a token is a ``patch/4 × patch/4`` patch of it. Either way
    a token covers ``patch_size`` × ``patch_size`` pixels; use :meth:`encode_images` / :meth:`decode_tokens`.
    """

    config_name = "config.json"

    @register_to_config
    def __init__(
        self,
        vocab: tuple[str, ...] | list[str] = ("<pad>", "<bos>"),
        colors: tuple[str, ...] | list[str] = ("red",),
        shapes: tuple[str, ...] | list[str] = ("circle",),
        textures: tuple[str, ...] | list[str] = ("solid",),
        max_text_len: int = 20,
        image_size: int = 64,
        patch_size: int = 8,
        channels: int = 3,
        d_model: int = 160,
        n_layers: int = 5,
        n_heads: int = 4,
        mlp_ratio: float = 4.0,
        prediction: str = "x0",
        t_clip: float = 0.05,
        flow_shift: float = 3.0,
        latent_channels: int = 0,
        latent_width: int = 32,
        sizes: tuple[str, ...] | list[str] = (),
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} must be divisible by n_heads={n_heads}")
        if prediction not in ("x0", "velocity"):
            raise ValueError(f"prediction={prediction!r}: choose 'x0' (clean-patch head) or 'velocity'")
        if image_size % patch_size:
            raise ValueError(f"image_size={image_size} must be a multiple of patch_size={patch_size}")
        if latent_channels and patch_size % LATENT_DOWN:
            raise ValueError(f"patch_size={patch_size} must be a multiple of {LATENT_DOWN} with a latent codec")
        d = d_model
        self.grid = image_size // patch_size
        self.n_patches = self.grid * self.grid
        if latent_channels:
            self.codec = LatentCodec(channels, latent_channels, latent_width)
            self.patch_dim = latent_channels * (patch_size // LATENT_DOWN) ** 2
        else:
            self.codec = None
            self.patch_dim = channels * patch_size * patch_size
        self.text_embed = nn.Embedding(len(vocab), d)
        self.text_pos = nn.Parameter(torch.randn(max_text_len, d) * 0.02)
        self.ask_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.patch_in = nn.Linear(self.patch_dim, d)
        # 2-D sin-cos initialisation (DiT): at high noise the patch content is pure noise of unit scale, so a
        # small random position code would be drowned and patches could not tell where they are.
        self.image_pos = nn.Parameter(sincos_2d(self.grid, d))
        self.time_mlp = nn.Sequential(nn.Linear(d, d), nn.SiLU(), nn.Linear(d, d))
        self.mode_embed = nn.Embedding(2, d)
        self.pool_proj = nn.Linear(d, d)
        self.blocks = nn.ModuleList(Block(d, n_heads, mlp_ratio) for _ in range(n_layers))
        self.norm_out = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.ada_out = nn.Linear(d, 2 * d)
        nn.init.zeros_(self.ada_out.weight)
        nn.init.zeros_(self.ada_out.bias)
        # Heads. The velocity / x0 head starts at zero (adaLN-Zero), the rest at PyTorch defaults.
        self.velocity_head = nn.Linear(d, self.patch_dim)
        nn.init.zeros_(self.velocity_head.weight)
        nn.init.zeros_(self.velocity_head.bias)
        self.yes_head = nn.Linear(d, 1)
        self.object_head = nn.Linear(d, 1)
        self.color_head = nn.Linear(d, len(colors))
        self.shape_head = nn.Linear(d, len(shapes))
        self.texture_head = nn.Linear(d, len(textures))
        # Per-patch size (small / large) of the object covering the patch; absent in older checkpoints.
        self.size_head = nn.Linear(d, len(sizes)) if sizes else None

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, S, S)`` in [-1, 1] → image tokens ``(B, N, patch_dim)`` (what the trunk reads and generates)."""
        cfg = self.config
        if self.codec is None:
            return patchify(images, cfg.patch_size)
        return patchify(self.codec.encode(images), cfg.patch_size // LATENT_DOWN)

    def decode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Image tokens ``(B, N, patch_dim)`` → images ``(B, 3, S, S)`` clamped to [-1, 1]."""
        cfg = self.config
        if self.codec is None:
            return unpatchify(tokens, cfg.patch_size, cfg.image_size, cfg.channels).clamp(-1, 1)
        latent = unpatchify(
            tokens, cfg.patch_size // LATENT_DOWN, cfg.image_size // LATENT_DOWN, cfg.latent_channels
        )
        return self.codec.decode(latent).clamp(-1, 1)

    def trunk_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the (separately trained, then frozen) latent codec's."""
        codec = {id(p) for p in self.codec.parameters()} if self.codec is not None else set()
        return [p for p in self.parameters() if id(p) not in codec]

    def forward(
        self,
        text_ids: torch.Tensor,
        text_mask: torch.Tensor,
        patches: torch.Tensor,
        t: torch.Tensor,
        mode: torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        """All heads at once (they are cheap next to the trunk).

        Returns ``velocity (B, N, P)`` (from the x0 head when ``prediction="x0"``), ``yes (B,)`` logit, ``object (B, N)`` logit, ``color (B, N, C)``,
        ``shape (B, N, S)``, ``texture (B, N, T)`` logits, and ``size (B, N, Z)`` when the config names ``sizes``.
        """
        b, length = text_ids.shape
        text = self.text_embed(text_ids) + self.text_pos[:length]
        maskf = text_mask.to(text.dtype)[..., None]
        pooled = (text * maskf).sum(1) / maskf.sum(1).clamp(min=1.0)
        cond = self.time_mlp(timestep_embedding(t, text.shape[-1]).to(text.dtype))
        cond = cond + self.mode_embed(mode) + self.pool_proj(pooled)
        img = self.patch_in(patches) + self.image_pos
        x = torch.cat([text, self.ask_token.expand(b, 1, -1), img], dim=1)
        keep = torch.cat([text_mask, torch.ones(b, 1 + img.shape[1], dtype=torch.bool, device=text_mask.device)], 1)
        attn_mask = keep[:, None, None, :]  # (B, 1, 1, L) True = may attend
        for block in self.blocks:
            x = block(x, cond, attn_mask)
        shift, scale = self.ada_out(F.silu(cond)).chunk(2, dim=-1)
        x = _modulate(self.norm_out(x), shift, scale)
        ask = x[:, length]
        img_out = x[:, length + 1 :]
        head = self.velocity_head(img_out)
        if self.config.prediction == "x0":
            # x-prediction (Li & He 2025, "Back to Basics: Let Denoising Generative Models Denoise"): a patch holds
            # 192 values but the trunk only d_model; clean patches live on a low-dimensional manifold and pass
            # through that bottleneck, noise does not. The velocity follows from x_t = (1 - t)·x0 + t·ε:
            # v = (x_t - x0) / t, with t clipped away from 0.
            velocity = (patches - head) / t.clamp(min=self.config.t_clip)[:, None, None].to(head.dtype)
        else:
            velocity = head
        out = {
            "velocity": velocity,
            "yes": self.yes_head(ask).squeeze(-1),
            "object": self.object_head(img_out).squeeze(-1),
            "color": self.color_head(img_out),
            "shape": self.shape_head(img_out),
            "texture": self.texture_head(img_out),
        }
        if self.size_head is not None:
            out["size"] = self.size_head(img_out)
        return out


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


@torch.no_grad()
def sample_patches(
    model: TinyUMM,
    tokenizer,
    prompts: list[str],
    seeds: list[int],
    steps: int,
    guidance: float,
    chunk: int = 8,
    callback=None,
) -> torch.Tensor:
    """Euler sampling of the rectified flow with classifier-free guidance; returns ``(B, N, P)`` patches.

    The sigma schedule is shifted by the model's ``flow_shift`` (the shift it was trained with): a patch holds
    192 values, so its content is detectable at high noise and the layout is decided there (SD3 §5.3.2).

    Noise for each image comes from its own CPU ``torch.Generator`` seeded with its seed, and the model always
    runs on chunks of exactly ``chunk`` images (padded), so an image depends only on (prompt, seed, steps,
    guidance), never on what else is in the batch. ``callback(done, total)`` is called after each step.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    n, p = model.n_patches, model.patch_dim
    results = []
    n_chunks = (len(prompts) + chunk - 1) // chunk
    for c in range(n_chunks):
        idx = list(range(c * chunk, min((c + 1) * chunk, len(prompts))))
        real = len(idx)
        idx = idx + [idx[-1]] * (chunk - real)  # pad with copies: fixed shapes, padded rows are dropped
        noise = torch.stack([torch.randn(n, p, generator=torch.Generator("cpu").manual_seed(int(seeds[i]))) for i in idx])
        x = noise.to(device=device, dtype=torch.float32)
        texts = [prompts[i] for i in idx]
        use_cfg = guidance != 1.0
        ids, mask = tokenizer.encode(texts + ([""] * chunk if use_cfg else []))
        ids, mask = ids.to(device), mask.to(device)
        mode = torch.zeros(ids.shape[0], dtype=torch.long, device=device)
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=float(model.config.flow_shift))
        scheduler.set_timesteps(steps, device=device)
        for i, ts in enumerate(scheduler.timesteps):
            sigma = scheduler.sigmas[i].expand(ids.shape[0]).to(device)
            inp = torch.cat([x, x]) if use_cfg else x
            v = model(ids, mask, inp.to(dtype), sigma.to(dtype), mode)["velocity"].float()
            if use_cfg:
                v_cond, v_uncond = v[:chunk], v[chunk:]
                v = v_uncond + guidance * (v_cond - v_uncond)
            x = scheduler.step(v, ts, x).prev_sample
            if callback is not None:
                callback(c * steps + i + 1, n_chunks * steps)
        results.append(x[:real].cpu())
    return torch.cat(results)
