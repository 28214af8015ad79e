"""BAGEL-7B-MoT (ByteDance Seed), the model SRUM was built on, written natively on transformers and diffusers.

Architecture (arXiv 2505.14683): one Qwen2 language model whose every decoder layer holds two experts — an
*understanding* expert for text and SigLIP vision tokens and a *generation* expert for VAE latent tokens — that
share self-attention over one sequence (a mixture of transformers). Each expert is built from transformers'
Qwen2 pieces (``Qwen2Attention`` projections plus per-head RMSNorm on queries and keys, ``Qwen2MLP``,
``Qwen2RMSNorm``, ``Qwen2RotaryEmbedding``); attention is PyTorch SDPA. Images are read by transformers' SigLIP
encoder (patch embedding, learned positions, encoder, post-norm) and an MLP connector, and drawn as FLUX VAE
latents (diffusers ``AutoencoderKL``, 16 channels, ×8), patchified 2×2 into tokens of 64 values, so one token
covers 16×16 pixels. ``vae2llm``/``llm2vae`` map latent tokens in and velocities out; a sinusoidal timestep
embedder and fixed 2-D sin-cos position tables mark time and place. Rotary positions: each text token advances
the position by one, a whole image (its start marker, its tokens, its end marker) shares one position.

Sequences (the official inference layout, reproduced here):

- generation, plain: ``[<|im_start|> prompt <|im_end|>] [<|vision_start|> latents <|vision_end|>]``; the text is
  causal, the image block attends to all of it and to itself (bidirectionally); the markers go through the
  understanding expert, the latents through the generation expert. Text CFG drops the prompt (empty context).
- generation, think: ``[system] [prompt]`` → the model writes a plan greedily (``<think> … </think> …``) →
  ``[system] [prompt] [plan]`` then the image; the text-CFG branch keeps only ``[system]``. The plan is kept in
  ``Sample.settings["plan"]`` (and ``settings["mode"]``), so a round's ``generation.jsonl`` and the Inspect tab
  show what the model planned.
- understanding: ``[system?] [<|vision_start|> SigLIP tokens <|vision_end|>] [question]`` then greedy decoding
  from ``<|im_start|>`` until ``<|im_end|>``.

Sampling (SRUM's settings, SRUM_SPEC §1.2): rectified flow from noise (t = 1) to data (t = 0) on
``linspace(1, 0, steps)`` shifted by ``s·t / (1 + (s − 1)·t)`` (s = 3), Euler steps (``steps − 1`` model calls,
as the official sampler counts them), text CFG 4 inside the interval ``0.4 < t ≤ 1``, image CFG 1 (off), global
CFG renormalisation (the guided velocity is scaled down to the conditional velocity's norm, per image). The
noise of each image comes from ``torch.Generator().manual_seed(seed)`` on the CPU in the official token layout,
so a seed gives the same starting latents on CPU and GPU and alone or in a batch.

Self-judging (``judge=``): ``"rubric"`` — SRUM's two text formats (the global layout request and the one request
listing every region's ``Region ID`` and pixel ``Bounding Box``), think mode and greedy decoding as SRUM
scores, parsed by :mod:`srum_core.parsing`; ``"likelihood"`` — ``2·P(Yes | Yes or No) − 1`` of the first answer
token after a yes/no question (fast, for interactive use). Box sources: SAM automatic masks (SRUM's choice,
top-10 by area) and OWLv2 grounding from :mod:`srum_core.boxes`.

Training (SRUM_SPEC §1.7): ``token_losses`` is the per-token squared error of the velocity on the latent token
grid, ``mean_c (v_θ(x_t) − (ε − x0))²`` → ``(B, N)``, at ``t = sigmoid(n)``, ``n ~ N(0, 1)`` (shift 1.0 as
SRUM's scripts), conditioned on the original short prompt, dropped with probability 0.1. ``x0`` is the VAE
posterior mean of the saved image (SRUM re-encodes its saved PNGs). LoRA goes on the generation expert
(attention and MLP projections) by default; full fine-tuning trains the whole transformer (both experts,
embeddings, head, ``vae2llm``/``llm2vae``/time embedder); the ViT and the VAE stay frozen. Gradient checkpointing
wraps each decoder layer.

Loading: a folder or hub id in the layout of ``ByteDance-Seed/BAGEL-7B-MoT`` (``llm_config.json``,
``vit_config.json``, ``ae.safetensors``, ``ema.safetensors``, Qwen2 tokenizer files). Every key of the checkpoint
is mapped onto this module's state dict (:func:`official_key`, :func:`flux_vae_key`) and the load fails if a key
is left over or a weight is left unfilled. A fine-tune that ships ``model.safetensors`` without some weights
(SRUM's ``Wayne-King/SRUM_BAGEL_7B_MoT``) takes the missing ones, and any missing config or tokenizer file, from
the base checkpoint's ``ema.safetensors``, as SRUM's own conversion does. bf16 on CUDA, fp32 on CPU; the model is
built on the meta device and filled tensor by tensor, so loading needs no second copy in RAM.

Parity with the official implementation, measured out of this tree: the official modules (ByteDance-Seed/Bagel,
transformers 4.49, flash-attn replaced by an SDPA stand-in with fp32 accumulation) were built on tiny configs,
randomised and saved as ``ema.safetensors``; this backend loaded that file (all 95 official keys consumed, the
same four marker token ids) and both ran on CPU under bf16 autocast with fp32 weights (the official code casts
attention inputs to bf16 and relies on autocast). Relative error = max|Δ| / max|official|:

- velocity prediction (t = 0.7, conditional): 5.2e-3 (max|Δ| 7.8e-3, cosine 0.999993); text-CFG-guided
  (scale 4, global renorm): 1.9e-2 (CFG amplifies rounding ×4); latents after 5 Euler steps with CFG interval
  and shift 3: 5.3e-3 — tolerance 1e-2 (3e-2 guided), i.e. bf16 rounding;
- understanding logits of the first answer token after an image and a question: 4.8e-3 (same argmax, same
  top 5) — tolerance 1e-2;
- greedy think text (24 tokens: a generation plan, and a think-mode answer about an image): identical.

In fp32 without autocast this backend differs from the official (bf16-attention) run by 4.0e-3 (velocity) and
4.9e-3 (logits): the official code's own bf16 casts. The numbers are in :data:`PARITY`.

Nothing heavy is imported at module import; weights load only in :func:`load_bagel`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import GenerationConfig, JudgeConfig
from ..device import default_dtype, resolve_device
from ..prompt_sets import T2ICompBenchWorld
from ..protocol import BoxSource, ProgressCallback, ProgressEvent
from ..templates import fill_template
from ..types import GlobalJudgement, Region, RegionJudgement, Sample
from ..vlm_judging import as_pil as _as_pil
from ..vlm_judging import crop as _crop
from ..vlm_judging import likelihood_global as _likelihood_global
from ..vlm_judging import likelihood_region as _likelihood_region

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "ByteDance-Seed/BAGEL-7B-MoT"
SRUM_MODEL = "Wayne-King/SRUM_BAGEL_7B_MoT"
#: Short names accepted for the weights (``--backend bagel`` loads :data:`DEFAULT_MODEL`).
BACKEND_ALIASES: dict[str, str] = {
    "bagel": DEFAULT_MODEL,
    "bagel-7b-mot": DEFAULT_MODEL,
    "srum-bagel": SRUM_MODEL,
    "srum-bagel-7b-mot": SRUM_MODEL,
}
JUDGES: tuple[str, ...] = ("rubric", "likelihood")
MODES: tuple[str, ...] = ("think", "plain")
RENORMS: tuple[str, ...] = ("global", "channel", "text_channel")

#: SRUM's generation settings (SRUM_SPEC §1.2); the CLI uses them when --gen-steps / --guidance are not given.
GENERATION_DEFAULTS: dict[str, float] = {"steps": 50, "guidance": 4.0}

# The two system prompts BAGEL was trained with for think mode. They are model inputs, reproduced byte for byte:
# any other wording is a different prompt and the model no longer plans the way it learned to.
GEN_THINK_SYSTEM_PROMPT = (
    "You should first think about the planning process in the mind and then generate the image. \n"
    "The planning process is enclosed within <think> </think> tags, i.e. <think> planning process here </think> "
    "image here"
)
VLM_THINK_SYSTEM_PROMPT = (
    "You should first think about the reasoning process in the mind and then provide the user with the answer. \n"
    "The reasoning process is enclosed within <think> </think> tags, i.e. <think> reasoning process here </think> "
    "answer here"
)

#: Measured parity with the official code (tiny random weights in the official layout, CPU, bf16 autocast on both
#: sides); relative error is max|Δ| / max|official|. See the module docstring for the set-up.
PARITY: dict[str, str] = {
    "keys": "95/95 official ema keys consumed; marker token ids identical",
    "velocity": "rel 5.2e-3 (max|Δ| 7.8e-3, cosine 0.999993); tolerance 1e-2",
    "velocity_cfg4_global_renorm": "rel 1.9e-2; tolerance 3e-2",
    "latents_after_5_steps": "rel 5.3e-3; tolerance 1e-2",
    "understanding_logits": "rel 4.8e-3, same argmax and top-5; tolerance 1e-2",
    "greedy_think_text": "identical (24-token plan and 24-token think-mode answer)",
}

# SRUM's judge requests (SRUM_SPEC §1.4), in this project's words; the answer lines are SRUM's, so
# srum_core.parsing reads them.
GLOBAL_RUBRIC = (
    "# Task: score the global layout\n"
    "You judge generated images. Score only how the arrangement of the elements and the structure of the scene "
    "match the spatial intent of the prompt.\n\n"
    'Prompt: "{prompt}"\n\n'
    "Scoring guide (one number from -1.0 to 1.0):\n"
    "1.0: the layout matches the prompt's spatial intent perfectly.\n"
    "0.5 to 0.9: mostly right, with small flaws.\n"
    "-0.4 to 0.4: neutral; the prompt asks for no particular layout, or the layout is generic.\n"
    "-0.9 to -0.5: the layout is wrong or goes against the prompt.\n"
    "-1.0: the layout fundamentally contradicts the prompt.\n\n"
    "Answer with two lines:\n"
    "Score: <a number between -1.0 and 1.0>\n"
    "Reason: <your justification>"
)
REGION_RUBRIC = (
    "# Task: identify and score regions\n"
    "You judge generated images region by region.\n\n"
    'Prompt: "{prompt}"\n\n'
    "Regions ({view_note}):\n"
    "{regions}\n\n"
    "For every Region ID above: first name the main object inside the region, then give one score from -1.0 to "
    "1.0 that weighs both its relevance to the prompt and its visual quality. Be strict: give full marks only "
    "when the quality is beyond doubt.\n"
    "Scoring guide:\n"
    "1.0: exactly what the prompt asks for, and flawless.\n"
    "0.5 to 0.9: relevant with minor flaws, or a well-made secondary element.\n"
    "-0.4 to 0.4: neutral: moderately relevant, mixed quality, or harmless background (0.0 is neutral).\n"
    "-0.9 to -0.5: irrelevant and distracting, or relevant but badly broken.\n"
    "-1.0: undermines the image and contradicts the prompt.\n\n"
    "Answer for every region with these lines, one region after another, separated by a line ---:\n"
    "Region ID: <id>\n"
    "Identified Object: <the object>\n"
    "Score: <a number between -1.0 and 1.0>\n"
    "Reason: <one sentence>"
)
_VIEW_NOTES = {
    "coords": "bounding boxes [x1, y1, x2, y2] in pixels of this {width}x{height} image",
    "boxes": "each drawn on the image as a box labelled with its Region ID",
    "crop": "the image shows only the region",
}
_BOX_COLOURS = ((255, 0, 0), (0, 200, 0), (0, 90, 255), (255, 200, 0), (255, 0, 255), (0, 220, 220))

# Image preprocessing constants of the official inference (understanding input, VAE-side pre-resize).
_VIT_MIN_SIDE = 224
_VAE_MIN_SIDE = 512
_MAX_PIXELS = 14 * 14 * 9 * 1024
# FLUX VAE latent normalisation.
_FLUX_SCALE = 0.3611
_FLUX_SHIFT = 0.1159
#: Assumed CPU throughput for the warning's estimate (fp32 matrix products on a laptop/workstation CPU).
_CPU_FLOPS = 5e11
_KNOWN_LM_PARAMS: dict[str, float] = {DEFAULT_MODEL: 14.1e9, SRUM_MODEL: 14.1e9}

_LOADED: dict[tuple[str, str | None, str, str], tuple[Any, Any]] = {}


# ==========================================================================================================
# Architecture description


@dataclass(frozen=True)
class BagelArchitecture:
    """Everything needed to build the modules: the Qwen2 and SigLIP configs (transformers objects), the FLUX VAE
    geometry (``AutoencoderKL`` keyword arguments) and BAGEL's own sizes."""

    llm: Any
    vit: Any
    vae: dict[str, Any]
    latent_patch_size: int = 2
    max_latent_size: int = 64
    vit_max_patches_per_side: int = 70
    connector_act: str = "gelu_pytorch_tanh"

    @property
    def hidden_size(self) -> int:
        return int(self.llm.hidden_size)

    @property
    def latent_channels(self) -> int:
        return int(self.vae["latent_channels"])

    @property
    def vae_downsample(self) -> int:
        return 2 ** (len(self.vae["block_out_channels"]) - 1)

    @property
    def token_size(self) -> int:
        return self.vae_downsample * self.latent_patch_size

    @property
    def token_dim(self) -> int:
        return self.latent_patch_size**2 * self.latent_channels


def llm_config_from_dict(data: dict[str, Any]) -> Any:
    """A transformers ``Qwen2Config`` from the fields of BAGEL's ``llm_config.json`` (QK-norm is implied)."""
    from transformers import Qwen2Config

    keep = {
        k: data[k]
        for k in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "hidden_act",
            "max_position_embeddings",
            "rms_norm_eps",
            "rope_theta",
            "rope_scaling",
            "bos_token_id",
            "eos_token_id",
        )
        if k in data and data[k] is not None
    }
    return Qwen2Config(**keep, tie_word_embeddings=False, use_sliding_window=False, attention_dropout=0.0)


def vit_config_from_dict(data: dict[str, Any], num_layers: int | None = None) -> Any:
    """A transformers ``SiglipVisionConfig`` from ``vit_config.json``; ``num_layers`` overrides the depth.

    BAGEL reads the penultimate layer's features: its checkpoint holds one layer fewer than the config names.
    """
    from transformers import SiglipVisionConfig

    keep = {
        k: data[k]
        for k in (
            "hidden_size",
            "intermediate_size",
            "num_attention_heads",
            "num_channels",
            "image_size",
            "patch_size",
            "hidden_act",
            "layer_norm_eps",
        )
        if k in data
    }
    layers = int(num_layers if num_layers is not None else data["num_hidden_layers"] - 1)
    config = SiglipVisionConfig(**keep, num_hidden_layers=layers, vision_use_head=False, attention_dropout=0.0)
    config._attn_implementation = "sdpa"
    return config


def vae_kwargs_from_shapes(shapes: dict[str, Sequence[int]]) -> dict[str, Any]:
    """``AutoencoderKL`` keyword arguments for a FLUX-layout autoencoder, read from its tensor shapes."""
    ch = int(shapes["encoder.conv_in.weight"][0])
    levels = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.down\.(\d+)\.", k)))
    blocks = 1 + max(int(m.group(1)) for k in shapes if (m := re.match(r"encoder\.down\.0\.block\.(\d+)\.", k)))
    channels = [int(shapes[f"encoder.down.{i}.block.0.conv2.weight"][0]) for i in range(levels)]
    return {
        "in_channels": int(shapes["encoder.conv_in.weight"][1]),
        "out_channels": int(shapes["decoder.conv_out.weight"][0]),
        "down_block_types": ("DownEncoderBlock2D",) * levels,
        "up_block_types": ("UpDecoderBlock2D",) * levels,
        "block_out_channels": tuple(channels),
        "layers_per_block": blocks,
        "latent_channels": int(shapes["encoder.conv_out.weight"][0]) // 2,
        "norm_num_groups": 32,
        "scaling_factor": _FLUX_SCALE,
        "shift_factor": _FLUX_SHIFT,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "mid_block_add_attention": True,
        "force_upcast": False,
        "sample_size": ch * 8,
    }


def published_architecture() -> BagelArchitecture:
    """BAGEL-7B-MoT's sizes as published (Qwen2.5-7B language model, SigLIP so400m/14 at 980², FLUX VAE)."""
    llm = llm_config_from_dict(
        {
            "vocab_size": 152064,
            "hidden_size": 3584,
            "intermediate_size": 18944,
            "num_hidden_layers": 28,
            "num_attention_heads": 28,
            "num_key_value_heads": 4,
            "hidden_act": "silu",
            "max_position_embeddings": 32768,
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
        }
    )
    vit = vit_config_from_dict(
        {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_attention_heads": 16,
            "num_hidden_layers": 27,
            "image_size": 980,
            "patch_size": 14,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        }
    )
    vae = vae_kwargs_from_shapes(_flux_vae_shapes(ch=128, ch_mult=(1, 2, 4, 4), blocks=2, z=16))
    return BagelArchitecture(
        llm=llm, vit=vit, vae=vae, latent_patch_size=2, max_latent_size=64, vit_max_patches_per_side=70
    )


def _flux_vae_shapes(ch: int, ch_mult: Sequence[int], blocks: int, z: int) -> dict[str, tuple[int, ...]]:
    """The few tensor shapes :func:`vae_kwargs_from_shapes` reads, for a FLUX-layout autoencoder."""
    shapes: dict[str, tuple[int, ...]] = {
        "encoder.conv_in.weight": (ch, 3, 3, 3),
        "encoder.conv_out.weight": (2 * z, ch * ch_mult[-1], 3, 3),
        "decoder.conv_out.weight": (3, ch, 3, 3),
    }
    for i, m in enumerate(ch_mult):
        for j in range(blocks):
            shapes[f"encoder.down.{i}.block.{j}.conv2.weight"] = (ch * m, ch * m, 3, 3)
    return shapes


# ==========================================================================================================
# Modules


def sincos_2d(dim: int, side: int) -> torch.Tensor:
    """``(side², dim)`` fixed 2-D sin-cos table, row-major over (row, column); first half encodes the column,
    second half the row, each as ``[sin, cos]`` of ``pos / 10000^(2k/d)`` (MAE/DiT form, computed in float64)."""
    if dim % 4:
        raise ValueError(f"sin-cos position table needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(
        torch.arange(side, dtype=torch.float64), torch.arange(side, dtype=torch.float64), indexing="ij"
    )

    def one_axis(pos: torch.Tensor) -> torch.Tensor:
        half = dim // 4
        omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)
        angles = pos.reshape(-1, 1) * omega[None]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    return torch.cat([one_axis(cols), one_axis(rows)], dim=1).float()


def grid_position_ids(rows: int, cols: int, max_per_side: int) -> torch.Tensor:
    """Flattened ids ``row · max_per_side + col`` of a ``rows × cols`` grid (positions extrapolate, not stretch)."""
    return (torch.arange(rows)[:, None] * max_per_side + torch.arange(cols)[None, :]).reshape(-1)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of a flow time ``t ∈ [0, 1]`` (256 of them, ``[cos, sin]``) through a SiLU MLP."""

    def __init__(self, hidden_size: int, frequencies: int = 256):
        super().__init__()
        self.frequencies = frequencies
        self.mlp = nn.Sequential(nn.Linear(frequencies, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """``t``: ``(R,)`` → ``(R, hidden)``."""
        half = self.frequencies // 2
        freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
        args = t.float()[:, None] * freqs[None]
        features = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
        weight = self.mlp[0].weight
        return self.mlp(features.to(weight.dtype))


class Connector(nn.Module):
    """Two-layer MLP from SigLIP width to the language model's width."""

    def __init__(self, in_dim: int, out_dim: int, act: str):
        super().__init__()
        from transformers.activations import ACT2FN

        self.fc1 = nn.Linear(in_dim, out_dim)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Expert(nn.Module):
    """One expert's half of a decoder layer: Qwen2 attention projections with QK-norm, RMSNorms, gated MLP."""

    def __init__(self, config: Any, layer_idx: int):
        super().__init__()
        from transformers.models.qwen2.modeling_qwen2 import Qwen2Attention, Qwen2MLP, Qwen2RMSNorm

        eps = config.rms_norm_eps
        self.input_layernorm = Qwen2RMSNorm(config.hidden_size, eps=eps)
        self.self_attn = Qwen2Attention(config, layer_idx)
        head_dim = self.self_attn.head_dim
        self.q_norm = Qwen2RMSNorm(head_dim, eps=eps)
        self.k_norm = Qwen2RMSNorm(head_dim, eps=eps)
        self.post_attention_layernorm = Qwen2RMSNorm(config.hidden_size, eps=eps)
        self.mlp = Qwen2MLP(config)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normed input ``(R, l, D)`` → queries ``(R, l, H, hd)``, keys and values ``(R, l, KVH, hd)``."""
        attn = self.self_attn
        hd = attn.head_dim
        q = self.q_norm(attn.q_proj(x).unflatten(-1, (-1, hd)))
        k = self.k_norm(attn.k_proj(x).unflatten(-1, (-1, hd)))
        v = attn.v_proj(x).unflatten(-1, (-1, hd))
        return q, k, v


def _split(x: torch.Tensor, span: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Columns outside ``span`` (understanding tokens, in order) and inside it (generation tokens)."""
    start, end = span
    return torch.cat([x[:, :start], x[:, end:]], dim=1), x[:, start:end]


def _merge(und: torch.Tensor, gen: torch.Tensor, span: tuple[int, int]) -> torch.Tensor:
    start = span[0]
    return torch.cat([und[:, :start], gen, und[:, start:]], dim=1)


def _by_expert(x: torch.Tensor, span: tuple[int, int] | None, und: Any, gen: Any) -> torch.Tensor:
    """``und(x)`` on understanding tokens and ``gen(x)`` on the generation tokens in ``span``."""
    if span is None:
        return und(x)
    x_und, x_gen = _split(x, span)
    return _merge(und(x_und), gen(x_gen), span)


class MoTLayer(nn.Module):
    """A mixture-of-transformers decoder layer: two experts, one shared attention over the whole sequence."""

    def __init__(self, config: Any, layer_idx: int):
        super().__init__()
        self.und = Expert(config, layer_idx)
        self.gen = Expert(config, layer_idx)
        self.groups = config.num_attention_heads // config.num_key_value_heads

    def forward(
        self,
        hidden: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        mask: torch.Tensor,
        past_k: torch.Tensor | None,
        past_v: torch.Tensor | None,
        span: tuple[int, int] | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``hidden`` (R, L, D) → new hidden, and this layer's keys/values of the ``L`` tokens (R, KVH, L, hd).

        ``mask``: (R, 1, L, P + L) bool, True where a query may attend; ``past_*``: (R, KVH, P, hd) or None.
        """
        from transformers.models.qwen2.modeling_qwen2 import apply_rotary_pos_emb

        if span is None:
            q, k, v = self.und.qkv(self.und.input_layernorm(hidden))
        else:
            h_und, h_gen = _split(hidden, span)
            qu, ku, vu = self.und.qkv(self.und.input_layernorm(h_und))
            qg, kg, vg = self.gen.qkv(self.gen.input_layernorm(h_gen))
            q, k, v = _merge(qu, qg, span), _merge(ku, kg, span), _merge(vu, vg, span)
        q, k = apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        keys = k if past_k is None else torch.cat([past_k, k], dim=2)
        values = v if past_v is None else torch.cat([past_v, v], dim=2)
        if self.groups > 1:
            keys = keys.repeat_interleave(self.groups, dim=1)
            values = values.repeat_interleave(self.groups, dim=1)
        attn = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        attn = attn.transpose(1, 2).flatten(2)
        hidden = hidden + _by_expert(attn, span, self.und.self_attn.o_proj, self.gen.self_attn.o_proj)
        mlp_out = _by_expert(
            hidden,
            span,
            lambda x: self.und.mlp(self.und.post_attention_layernorm(x)),
            lambda x: self.gen.mlp(self.gen.post_attention_layernorm(x)),
        )
        return hidden + mlp_out, k, v


class BagelTransformer(nn.Module):
    """The language model with both experts, plus the generation-side heads; what training updates.

    ``embed_tokens``/``lm_head`` (text), ``layers`` (each with ``und`` and ``gen`` experts), ``norm_und``/
    ``norm_gen`` (final norms), ``time_embedder``, ``vae2llm``/``llm2vae`` and the fixed ``latent_pos_embed``
    table (a buffer).
    """

    def __init__(self, arch: BagelArchitecture):
        super().__init__()
        from transformers.models.qwen2.modeling_qwen2 import Qwen2RMSNorm, Qwen2RotaryEmbedding

        config = arch.llm
        hidden = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, hidden)
        self.layers = nn.ModuleList([MoTLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm_und = Qwen2RMSNorm(hidden, eps=config.rms_norm_eps)
        self.norm_gen = Qwen2RMSNorm(hidden, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(hidden, config.vocab_size, bias=False)
        self.rotary_emb = Qwen2RotaryEmbedding(config=config)
        self.time_embedder = TimestepEmbedder(hidden)
        self.vae2llm = nn.Linear(arch.token_dim, hidden)
        self.llm2vae = nn.Linear(hidden, arch.token_dim)
        self.register_buffer("latent_pos_embed", sincos_2d(hidden, arch.max_latent_size))
        self.gradient_checkpointing = False

    def forward(
        self,
        hidden: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        past: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
        span: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Run every layer: ``hidden`` (R, L, D) at rotary ``positions`` (R, L) under ``mask`` (R, 1, L, P + L).

        Returns the final-normed hidden states and each layer's keys/values of these ``L`` tokens.
        ``span``: the columns that are generation tokens (the rest go through the understanding expert).
        """
        from torch.utils.checkpoint import checkpoint

        cos, sin = self.rotary_emb(hidden, positions)
        presents = []
        for i, layer in enumerate(self.layers):
            past_k, past_v = past[i] if past is not None else (None, None)
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                hidden, k, v = checkpoint(layer, hidden, cos, sin, mask, past_k, past_v, span, use_reentrant=False)
            else:
                hidden, k, v = layer(hidden, cos, sin, mask, past_k, past_v, span)
            presents.append((k, v))
        return _by_expert(hidden, span, self.norm_und, self.norm_gen), presents


class BagelVision(nn.Module):
    """SigLIP (transformers' embeddings and encoder, penultimate layer) + connector + fixed position table."""

    def __init__(self, arch: BagelArchitecture):
        super().__init__()
        from transformers.models.siglip.modeling_siglip import SiglipEncoder, SiglipVisionEmbeddings

        vit = arch.vit
        self.patch_size = int(vit.patch_size)
        self.max_per_side = int(arch.vit_max_patches_per_side)
        self.embeddings = SiglipVisionEmbeddings(vit)
        self.encoder = SiglipEncoder(vit)
        self.post_layernorm = nn.LayerNorm(vit.hidden_size, eps=vit.layer_norm_eps)
        self.connector = Connector(vit.hidden_size, arch.hidden_size, arch.connector_act)
        self.register_buffer("pos_embed", sincos_2d(arch.hidden_size, self.max_per_side))

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """``pixels`` (B, 3, H, W) in [-1, 1], sides multiples of the patch → tokens (B, H·W / p², hidden)."""
        weight = self.embeddings.patch_embedding.weight
        patches = self.embeddings.patch_embedding(pixels.to(weight.dtype))
        rows, cols = patches.shape[-2:]
        ids = grid_position_ids(rows, cols, self.max_per_side).to(pixels.device)
        x = patches.flatten(2).transpose(1, 2) + self.embeddings.position_embedding(ids)[None]
        x = self.post_layernorm(self.encoder(inputs_embeds=x).last_hidden_state)
        return self.connector(x) + self.pos_embed[ids][None].to(x.dtype)


class BagelModel(nn.Module):
    """The whole model: ``transformer`` (trainable), ``vision`` (frozen), ``vae`` (diffusers, frozen)."""

    def __init__(self, arch: BagelArchitecture):
        super().__init__()
        from diffusers import AutoencoderKL

        self.arch = arch
        self.transformer = BagelTransformer(arch)
        self.vision = BagelVision(arch)
        self.vae = AutoencoderKL(**arch.vae)


def reset_nonpersistent_buffers(model: BagelModel) -> None:
    """Recompute what the checkpoint does not hold (rotary frequencies in fp32, SigLIP position ids)."""
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding

    rotary = model.transformer.rotary_emb
    device = model.transformer.embed_tokens.weight.device
    with torch.device("cpu"):
        fresh = Qwen2RotaryEmbedding(config=rotary.config)
    rotary.inv_freq = fresh.inv_freq.to(device=device, dtype=torch.float32)
    rotary.original_inv_freq = rotary.inv_freq.clone()
    emb = model.vision.embeddings
    emb.position_ids = torch.arange(emb.num_positions, device=device).expand((1, -1))


@torch.no_grad()
def init_random_(model: BagelModel, seed: int = 0, std: float = 0.02) -> BagelModel:
    """Fill every weight with seeded random values (normal(0, std) matrices, unit norms, zero biases) in place;
    fixed tables are recomputed. For benchmarks and tests of a full-size model without its checkpoint."""
    generators: dict[str, torch.Generator] = {}
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            param.zero_()
        elif param.dim() == 1:
            param.fill_(1.0)
        else:
            # One seeded generator per device: drawing on the GPU keeps a 14B-parameter init fast.
            key = str(param.device)
            if key not in generators:
                generators[key] = torch.Generator(device=param.device).manual_seed(int(seed))
            param.normal_(0.0, std, generator=generators[key])
    hidden = model.arch.hidden_size
    model.transformer.latent_pos_embed.copy_(sincos_2d(hidden, model.arch.max_latent_size))
    model.vision.pos_embed.copy_(sincos_2d(hidden, model.arch.vit_max_patches_per_side))
    reset_nonpersistent_buffers(model)
    return model


def build_model(arch: BagelArchitecture, device: torch.device, dtype: torch.dtype) -> BagelModel:
    """An uninitialised model allocated directly on ``device`` in ``dtype`` (built on the meta device first, in
    ``dtype``, so a 14B-parameter model never exists in fp32 on the way)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = BagelModel(arch)
    finally:
        torch.set_default_dtype(previous)
    model.to_empty(device=device)
    model.to(dtype)
    reset_nonpersistent_buffers(model)
    return model.eval().requires_grad_(False)


# ==========================================================================================================
# Checkpoint key mapping


def official_key(key: str) -> tuple[str, str | None] | None:
    """Our state-dict key (and a transform name) for a key of BAGEL's ``ema.safetensors``; None if unknown."""
    m = re.fullmatch(r"language_model\.model\.layers\.(\d+)\.(.+)", key)
    if m:
        index, rest = m.groups()
        expert = "gen" if "_moe_gen" in rest else "und"
        rest = rest.replace("_moe_gen", "")
        rest = re.sub(r"^self_attn\.(q_norm|k_norm)\.", r"\1.", rest)
        if not re.fullmatch(
            r"(self_attn\.(q_proj|k_proj|v_proj)\.(weight|bias)|self_attn\.o_proj\.weight|(q_norm|k_norm)\.weight"
            r"|mlp\.(gate_proj|up_proj|down_proj)\.weight|(input_layernorm|post_attention_layernorm)\.weight)",
            rest,
        ):
            return None
        return f"transformer.layers.{index}.{expert}.{rest}", None
    fixed = {
        "language_model.model.embed_tokens.weight": "transformer.embed_tokens.weight",
        "language_model.model.norm.weight": "transformer.norm_und.weight",
        "language_model.model.norm_moe_gen.weight": "transformer.norm_gen.weight",
        "language_model.lm_head.weight": "transformer.lm_head.weight",
        "latent_pos_embed.pos_embed": "transformer.latent_pos_embed",
        "vit_pos_embed.pos_embed": "vision.pos_embed",
    }
    if key in fixed:
        return fixed[key], None
    m = re.fullmatch(r"(time_embedder\.mlp\.[02]|vae2llm|llm2vae)\.(weight|bias)", key)
    if m:
        return f"transformer.{key}", None
    m = re.fullmatch(r"connector\.(fc1|fc2)\.(weight|bias)", key)
    if m:
        return f"vision.{key}", None
    if key == "vit_model.vision_model.embeddings.patch_embedding.weight":
        return "vision.embeddings.patch_embedding.weight", "linear_to_conv"
    m = re.fullmatch(
        r"vit_model\.vision_model\.(embeddings\.patch_embedding\.bias|embeddings\.position_embedding\.weight"
        r"|post_layernorm\.(weight|bias)"
        r"|encoder\.layers\.\d+\.(self_attn\.(q_proj|k_proj|v_proj|out_proj)|layer_norm1|layer_norm2|mlp\.fc1|mlp\.fc2)"
        r"\.(weight|bias))",
        key,
    )
    if m:
        return f"vision.{m.group(1)}", None
    return None


def flux_vae_key(key: str, levels: int) -> tuple[str, str | None] | None:
    """Our key (``vae.`` + diffusers ``AutoencoderKL`` name) for a key of FLUX's ``ae.safetensors``."""
    m = re.fullmatch(r"(encoder|decoder)\.(.+)", key)
    if not m:
        return None
    part, rest = m.groups()
    transform = None
    if re.fullmatch(r"(conv_in|conv_out)\.(weight|bias)", rest):
        name = rest
    elif m2 := re.fullmatch(r"norm_out\.(weight|bias)", rest):
        name = f"conv_norm_out.{m2.group(1)}"
    elif m2 := re.fullmatch(r"mid\.block_([12])\.(.+)", rest):
        name = f"mid_block.resnets.{int(m2.group(1)) - 1}.{m2.group(2)}"
    elif m2 := re.fullmatch(r"mid\.attn_1\.(norm|q|k|v|proj_out)\.(weight|bias)", rest):
        new = {"norm": "group_norm", "q": "to_q", "k": "to_k", "v": "to_v", "proj_out": "to_out.0"}[m2.group(1)]
        name = f"mid_block.attentions.0.{new}.{m2.group(2)}"
        transform = "squeeze_1x1" if m2.group(1) != "norm" and m2.group(2) == "weight" else None
    elif part == "encoder" and (m2 := re.fullmatch(r"down\.(\d+)\.block\.(\d+)\.(.+)", rest)):
        name = f"down_blocks.{m2.group(1)}.resnets.{m2.group(2)}.{m2.group(3)}"
    elif part == "encoder" and (m2 := re.fullmatch(r"down\.(\d+)\.downsample\.conv\.(weight|bias)", rest)):
        name = f"down_blocks.{m2.group(1)}.downsamplers.0.conv.{m2.group(2)}"
    elif part == "decoder" and (m2 := re.fullmatch(r"up\.(\d+)\.block\.(\d+)\.(.+)", rest)):
        name = f"up_blocks.{levels - 1 - int(m2.group(1))}.resnets.{m2.group(2)}.{m2.group(3)}"
    elif part == "decoder" and (m2 := re.fullmatch(r"up\.(\d+)\.upsample\.conv\.(weight|bias)", rest)):
        name = f"up_blocks.{levels - 1 - int(m2.group(1))}.upsamplers.0.conv.{m2.group(2)}"
    else:
        return None
    name = name.replace("nin_shortcut", "conv_shortcut")
    return f"vae.{part}.{name}", transform


def _transform(tensor: torch.Tensor, how: str | None, target_shape: torch.Size) -> torch.Tensor:
    if how == "linear_to_conv":  # (D, p·p·C) with (p, q, c) order → Conv2d weight (D, C, p, p)
        out_ch, in_ch, kh, kw = target_shape
        tensor = tensor.reshape(out_ch, kh, kw, in_ch).permute(0, 3, 1, 2)
    elif how == "squeeze_1x1":
        tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
    return tensor


@dataclass
class LoadReport:
    """What loading did: checkpoint keys consumed (per file), our keys filled, keys computed, keys taken from
    the base checkpoint."""

    consumed: dict[str, list[str]] = field(default_factory=dict)
    filled: set[str] = field(default_factory=set)
    computed: list[str] = field(default_factory=list)
    from_base: list[str] = field(default_factory=list)


class _SafetensorsFiles:
    """Read-only view over one checkpoint (a single file or a sharded index) by key, tensor by tensor."""

    def __init__(self, path: Path):
        from safetensors import safe_open

        self.path = path
        if path.name.endswith(".index.json"):
            weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
            files = sorted(set(weight_map.values()))
            handles = {f: safe_open(str(path.parent / f), framework="pt") for f in files}
            self._where = {k: handles[f] for k, f in weight_map.items()}
        else:
            handle = safe_open(str(path), framework="pt")
            self._where = {k: handle for k in handle.keys()}

    def keys(self) -> list[str]:
        return list(self._where)

    def shape(self, key: str) -> tuple[int, ...]:
        return tuple(self._where[key].get_slice(key).get_shape())

    def get(self, key: str) -> torch.Tensor:
        return self._where[key].get_tensor(key)


def _fill(
    state: dict[str, torch.Tensor],
    source: _SafetensorsFiles,
    mapper: Any,
    report: LoadReport,
    label: str,
    *,
    only_missing: bool = False,
) -> list[str]:
    """Copy every key of ``source`` into ``state`` through ``mapper``; returns the keys ``mapper`` did not know."""
    unknown, used = [], []
    for key in source.keys():
        mapped = mapper(key)
        if mapped is None or mapped[0] not in state:
            unknown.append(key)
            continue
        ours, how = mapped
        if only_missing and ours in report.filled:
            continue
        target = state[ours]
        tensor = _transform(source.get(key), how, target.shape)
        if tuple(tensor.shape) != tuple(target.shape):
            raise ValueError(
                f"{label}: {key} has shape {tuple(tensor.shape)} but {ours} needs {tuple(target.shape)}; the "
                "configs beside the weights do not describe this checkpoint"
            )
        target.copy_(tensor)
        report.filled.add(ours)
        used.append(key)
    report.consumed[label] = used
    return unknown


# ==========================================================================================================
# Files: local folder or hub id, base fallback


_WEIGHT_FILES = ("ema.safetensors", "model.safetensors", "ema.safetensors.index.json", "model.safetensors.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


def resolve_model_id(name: str) -> str:
    """``bagel`` → ``ByteDance-Seed/BAGEL-7B-MoT``, ``srum-bagel`` → SRUM's weights; paths and ids unchanged."""
    return BACKEND_ALIASES.get(name.strip().lower(), name)


def _local_folder(source: str, revision: str | None = None) -> Path:
    """A local folder holding ``source``'s files (downloaded from the hub if ``source`` is not a folder)."""
    if os.path.isdir(source):
        return Path(source)
    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.txt", "ae.safetensors", "ema.safetensors*", "model*.safetensors*"]
    try:
        return Path(snapshot_download(source, revision=revision, allow_patterns=patterns))
    except Exception as err:  # network, missing repo, offline cache miss
        raise OSError(
            f"could not get BAGEL files for {source!r}: {err}. Give a local folder in the layout of {DEFAULT_MODEL} "
            "(llm_config.json, vit_config.json, ae.safetensors, ema.safetensors, tokenizer files), or a hub id "
            "that is downloaded (unset HF_HUB_OFFLINE to download)."
        ) from err


def _weights_file(folder: Path) -> Path | None:
    for name in _WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    return None


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer.json").is_file() or (
        (folder / "vocab.json").is_file() and (folder / "merges.txt").is_file()
    )


def load_tokenizer(folder: Path) -> Any:
    """The Qwen2 tokenizer in ``folder``, with BAGEL's four markers (added if the vocabulary lacks them)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError, KeyError):
        from transformers import Qwen2Tokenizer

        tokenizer = Qwen2Tokenizer.from_pretrained(str(folder))
    missing = [
        t
        for t in ("<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>")
        if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)
    ]
    if missing:
        tokenizer.add_tokens(missing)
    return tokenizer


@dataclass
class BagelFiles:
    """Where each part of a checkpoint comes from (a fine-tune may borrow parts from its base)."""

    source: str
    weights: Path
    llm_config: Path
    vit_config: Path
    vae: Path
    tokenizer: Path
    base_weights: Path | None = None


def locate_files(source: str, revision: str | None = None, base: str | None = None) -> BagelFiles:
    """The files of ``source`` (folder or hub id), taking what it lacks from ``base`` (default: BAGEL-7B-MoT)."""
    folder = _local_folder(source, revision)
    weights = _weights_file(folder)
    if weights is None:
        raise FileNotFoundError(f"{folder} holds no BAGEL weights: expected one of {', '.join(_WEIGHT_FILES)}")
    needs_base = (
        weights.name.startswith("model")
        or not all((folder / f).is_file() for f in ("llm_config.json", "vit_config.json", "ae.safetensors"))
        or not _has_tokenizer(folder)
    )
    base_folder = None
    if needs_base:
        base_id = base or DEFAULT_MODEL
        if os.path.abspath(base_id) != os.path.abspath(str(folder)):
            try:
                base_folder = _local_folder(base_id)
            except OSError as err:
                if weights.name.startswith("ema") or base is not None:
                    raise
                logger.info("no base checkpoint available for %s (%s); loading it on its own", source, err)

    def pick(name: str) -> Path:
        if (folder / name).is_file():
            return folder / name
        if base_folder is not None and (base_folder / name).is_file():
            return base_folder / name
        raise FileNotFoundError(f"{name} is missing from {folder} (and from the base checkpoint, if any)")

    tokenizer_folder = folder if _has_tokenizer(folder) else base_folder
    if tokenizer_folder is None:
        raise FileNotFoundError(f"no Qwen2 tokenizer files ({', '.join(_TOKENIZER_FILES)}) in {folder}")
    base_weights = _weights_file(base_folder) if base_folder is not None else None
    return BagelFiles(
        source=source,
        weights=weights,
        llm_config=pick("llm_config.json"),
        vit_config=pick("vit_config.json"),
        vae=pick("ae.safetensors"),
        tokenizer=tokenizer_folder,
        base_weights=base_weights if base_weights is not None and base_weights != weights else None,
    )


def architecture_from_files(files: BagelFiles) -> BagelArchitecture:
    """The architecture the configs and the tensor shapes of the checkpoint describe."""
    weights = _SafetensorsFiles(files.weights)
    shapes = {k: weights.shape(k) for k in weights.keys()}
    if files.base_weights is not None:
        base = _SafetensorsFiles(files.base_weights)
        for k in base.keys():
            shapes.setdefault(k, base.shape(k))
    vae = _SafetensorsFiles(files.vae)
    llm = llm_config_from_dict(json.loads(files.llm_config.read_text(encoding="utf-8")))
    vit_data = json.loads(files.vit_config.read_text(encoding="utf-8"))
    vit_layers = {
        int(m.group(1)) for k in shapes if (m := re.match(r"vit_model\.vision_model\.encoder\.layers\.(\d+)\.", k))
    }
    vit = vit_config_from_dict(vit_data, num_layers=1 + max(vit_layers) if vit_layers else None)
    token_dim = int(shapes["vae2llm.weight"][1])
    vae_kwargs = vae_kwargs_from_shapes({k: vae.shape(k) for k in vae.keys()})
    patch = int(round(math.sqrt(token_dim / vae_kwargs["latent_channels"])))
    if "latent_pos_embed.pos_embed" in shapes:
        max_latent = int(round(math.sqrt(shapes["latent_pos_embed.pos_embed"][0])))
    else:
        max_latent = 64
    per_side = int(vit.image_size) // int(vit.patch_size)
    return BagelArchitecture(
        llm=llm,
        vit=vit,
        vae=vae_kwargs,
        latent_patch_size=patch,
        max_latent_size=max_latent,
        vit_max_patches_per_side=per_side,
    )


@torch.no_grad()
def load_weights(model: BagelModel, files: BagelFiles) -> LoadReport:
    """Fill ``model`` from the checkpoint files; every checkpoint key must be used and every weight filled.

    Keys the weights file lacks come from the base checkpoint (SRUM's fine-tune); the fixed sin-cos tables may be
    absent and are then computed.
    """
    state = model.state_dict(keep_vars=True)
    state = {k: v.data if isinstance(v, torch.Tensor) else v for k, v in state.items()}
    report = LoadReport()
    levels = len(model.arch.vae["block_out_channels"])
    unknown = _fill(state, _SafetensorsFiles(files.weights), official_key, report, files.weights.name)
    unknown_vae = _fill(
        state, _SafetensorsFiles(files.vae), lambda k: flux_vae_key(k, levels), report, "ae.safetensors"
    )
    if unknown or unknown_vae:
        left = (unknown + unknown_vae)[:5]
        raise ValueError(
            f"{len(unknown) + len(unknown_vae)} checkpoint keys have no place in this model (e.g. {left}); the "
            "checkpoint is not in BAGEL-7B-MoT's layout"
        )
    if files.base_weights is not None and len(report.filled) < len(state):
        before = set(report.filled)
        _fill(
            state,
            _SafetensorsFiles(files.base_weights),
            official_key,
            report,
            "base:" + files.base_weights.name,
            only_missing=True,
        )
        report.from_base = sorted(report.filled - before)
        if report.from_base:
            logger.info(
                "took %d weights missing from %s from the base checkpoint", len(report.from_base), files.weights
            )
    hidden = model.arch.hidden_size
    for key, table in (
        ("transformer.latent_pos_embed", lambda: sincos_2d(hidden, model.arch.max_latent_size)),
        ("vision.pos_embed", lambda: sincos_2d(hidden, model.arch.vit_max_patches_per_side)),
    ):
        if key not in report.filled:
            state[key].copy_(table())
            report.filled.add(key)
            report.computed.append(key)
    unfilled = sorted(set(state) - report.filled)
    if unfilled:
        raise ValueError(
            f"{len(unfilled)} weights are missing from the checkpoint (e.g. {unfilled[:5]}); give the base "
            f"checkpoint ({DEFAULT_MODEL}) to complete a partial fine-tune"
        )
    return report


# ==========================================================================================================
# Loading and the CPU warning


def clear_bagel_cache() -> None:
    """Forget every loaded BAGEL model."""
    _LOADED.clear()


def bagel_cpu_warning(model_id: str, device: str = "auto", image_size: int = 1024, steps: int = 50) -> str | None:
    """What generating with ``model_id`` costs on CPU, or None when it is cheap or a GPU will be used.

    Compute-bound estimate: each of the ``steps − 1`` flow steps runs the generation expert (half the language
    model's parameters) over every latent token, twice for CFG, at an assumed 0.5 TFLOP/s in fp32.
    """
    if resolve_device(device).type == "cuda":
        return None
    model_id = resolve_model_id(model_id)
    params = _KNOWN_LM_PARAMS.get(model_id)
    if os.path.isdir(model_id):
        try:
            data = json.loads((Path(model_id) / "llm_config.json").read_text(encoding="utf-8"))
            h, i, n = int(data["hidden_size"]), int(data["intermediate_size"]), int(data["num_hidden_layers"])
            params = 2.0 * n * (4 * h * h + 3 * h * i) + 2 * int(data["vocab_size"]) * h
        except (OSError, ValueError, KeyError):
            params = None
    if params is None:
        return None if "bagel" not in model_id.lower() else bagel_cpu_warning(DEFAULT_MODEL, device, image_size, steps)
    if params < 5e7:
        return None
    tokens = (image_size // 16) ** 2
    seconds = 2 * (params / 2) * tokens * 2 * (steps - 1) / _CPU_FLOPS
    ram_gb = params * 4 / 1e9 * 1.15
    return (
        f"{model_id} on CPU: about {params / 1e9:.0f}B language-model parameters (two experts) in fp32 need "
        f"~{ram_gb:.0f} GB of RAM, and one {image_size}² image is {steps - 1} flow steps over {tokens} latent tokens "
        f"with CFG, roughly {seconds / 60:.0f} minutes per image (judging adds more). Use a CUDA GPU (bf16) for "
        "real runs, or a tiny model to try the workflow."
    )


def load_bagel(
    model_id_or_path: str = DEFAULT_MODEL,
    revision: str | None = None,
    device: str = "auto",
    dtype: torch.dtype | None = None,
    *,
    base: str | None = None,
    use_cache: bool = True,
    **options: Any,
) -> BagelBackend:
    """Load a BAGEL checkpoint (alias, hub id or folder in the official layout) as a :class:`BagelBackend`.

    bf16 on CUDA, fp32 elsewhere, unless ``dtype`` says otherwise. ``base``: where missing weights, configs or
    tokenizer files come from (default ``ByteDance-Seed/BAGEL-7B-MoT``). Weights are loaded once per (source,
    revision, device, dtype) and shared — including adapters a round injects; ``use_cache=False`` gives a
    private copy. ``options`` go to :class:`BagelBackend`.
    """
    source = resolve_model_id(model_id_or_path)
    dev = resolve_device(device)
    dt = dtype or default_dtype(dev)
    key = (source, revision, str(dev), str(dt))
    pair = _LOADED.get(key) if use_cache else None
    if pair is None:
        files = locate_files(source, revision, base)
        arch = architecture_from_files(files)
        model = build_model(arch, dev, dt)
        report = load_weights(model, files)
        model.load_report = report
        tokenizer = load_tokenizer(files.tokenizer)
        if len(tokenizer) > arch.llm.vocab_size:
            raise ValueError(
                f"the tokenizer has {len(tokenizer)} tokens but the model embeds {arch.llm.vocab_size}; the "
                "tokenizer files do not belong to these weights"
            )
        pair = (model, tokenizer)
        if use_cache:
            _LOADED[key] = pair
        logger.info("loaded BAGEL %s on %s (%s)", source, dev, dt)
    return BagelBackend(pair[0], pair[1], model_id=source, **options)


# ==========================================================================================================
# Image helpers


def bagel_resize_size(
    width: int, height: int, max_size: int, min_size: int, stride: int, max_pixels: int = _MAX_PIXELS
) -> tuple[int, int]:
    """The ``(width, height)`` BAGEL's preprocessing gives an image: longest side ≤ ``max_size``, shortest ≥
    ``min_size`` (when both can hold), pixels ≤ ``max_pixels``, both sides multiples of ``stride``."""

    def divisible(value: float) -> int:
        return max(stride, int(round(value / stride) * stride))

    def scaled(w: float, h: float, s: float) -> tuple[int, int]:
        return divisible(round(w * s)), divisible(round(h * s))

    scale = max(min(max_size / max(width, height), 1.0), min_size / min(width, height))
    w, h = scaled(width, height, scale)
    if w * h > max_pixels:
        w, h = scaled(w, h, max_pixels / (w * h))
    if max(w, h) > max_size:
        w, h = scaled(w, h, max_size / max(w, h))
    return w, h


def _resize(image: Any, size: tuple[int, int]) -> Any:
    from PIL import Image

    return image if image.size == size else image.resize(size, Image.BICUBIC)


def _to_unit_range(image: Any) -> torch.Tensor:
    """PIL RGB → (3, H, W) float in [-1, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1) * 2.0 - 1.0


def draw_numbered_boxes(image: Any, regions: Sequence[Region]) -> Any:
    """A copy of ``image`` with each region drawn as a coloured rectangle labelled 1, 2, ... (its Region ID)."""
    from PIL import ImageDraw

    out = image.copy()
    draw = ImageDraw.Draw(out)
    line = max(1, round(min(out.size) / 128))
    for k, region in enumerate(regions, start=1):
        colour = _BOX_COLOURS[(k - 1) % len(_BOX_COLOURS)]
        x1, y1, x2, y2 = region.box
        draw.rectangle((x1, y1, max(x1, x2 - 1), max(y1, y2 - 1)), outline=colour, width=line)
        draw.text((x1 + line + 1, y1 + line), str(k), fill=colour)
    return out


def region_listing(regions: Sequence[Region], view: str) -> str:
    """SRUM's request body: ``Region ID: k`` and ``Bounding Box: [x1, y1, x2, y2]`` (pixels), one per region."""
    blocks = []
    for k, region in enumerate(regions, start=1):
        if view == "coords":
            x1, y1, x2, y2 = region.box
            where = f"[{x1}, {y1}, {x2}, {y2}]"
        elif view == "boxes":
            where = f"the box labelled {k} on the image"
        else:
            where = "the whole image"
        blocks.append(f"Region ID: {k}\nBounding Box: {where}\n---")
    return "\n".join(blocks)


# ==========================================================================================================
# Sequences: contexts, the cache, decoding


@dataclass
class _Context:
    """A prefilled batch of contexts: per-layer keys/values (R, KVH, cap, hd), which key columns are real
    (R, cap), the rotary position the next token takes (R,), and how many columns are in use."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    valid: torch.Tensor
    next_pos: torch.Tensor
    length: int
    hidden: torch.Tensor | None = None  # (R, length, hidden) last-layer states, kept only when asked (checks)

    def past(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        n = self.length
        return [(k[:, :, :n], v[:, :, :n]) for k, v in zip(self.keys, self.values)]

    def rows(self, index: torch.Tensor) -> _Context:
        return _Context(
            [k[index] for k in self.keys],
            [v[index] for v in self.values],
            self.valid[index],
            self.next_pos[index],
            self.length,
        )


# A context row is a list of segments: ("text", [ids]) or ("image", (3, H, W) tensor in [-1, 1]).
Segment = tuple[str, Any]


class BagelBackend(T2ICompBenchWorld):
    """A loaded BAGEL behind :class:`srum_core.protocol.UnifiedModel`.

    ``mode``: ``"think"`` (plan, then draw; SRUM's generation) or ``"plain"``. ``judge``: ``"rubric"`` (SRUM's
    text formats) or ``"likelihood"`` (P(Yes)). ``image_size``: side of generated images (default: the largest the
    latent position table allows, 1024 for BAGEL-7B-MoT). ``image_cfg``, ``cfg_interval``, ``timestep_shift``,
    ``cfg_renorm``/``cfg_renorm_min``: sampler settings (SRUM's by default). ``max_think_tokens`` (plan),
    ``max_global_tokens``/``max_region_tokens`` (rubric answers; SRUM's 1024 and 4096), ``judge_think``: think
    mode for rubric judging (SRUM: on). ``cond_dropout``/``train_timestep_shift``: training defaults (0.1 / 1.0).
    ``gradient_checkpointing``: recompute each layer in the backward pass. ``sam_model``/``grounding_model``: box
    sources (loaded on first use); ``sam_points_per_side``, ``grounding_threshold``.
    """

    generation_defaults: dict[str, float] = GENERATION_DEFAULTS
    #: A generation config's ``mode`` picks one of these; None keeps the backend's ``mode``.
    generation_modes: tuple[str, ...] = ("plain", "think")

    def __init__(
        self,
        model: BagelModel,
        tokenizer: Any,
        model_id: str = "bagel",
        *,
        mode: str = "think",
        judge: str = "rubric",
        image_size: int | None = None,
        image_cfg: float = 1.0,
        cfg_interval: tuple[float, float] = (0.4, 1.0),
        timestep_shift: float = 3.0,
        cfg_renorm: str = "global",
        cfg_renorm_min: float = 0.0,
        max_think_tokens: int = 1000,
        max_global_tokens: int = 1024,
        max_region_tokens: int = 4096,
        judge_think: bool = True,
        judge_batch_size: int = 8,
        cond_dropout: float = 0.1,
        train_timestep_shift: float = 1.0,
        gradient_checkpointing: bool = True,
        sam_model: str | None = "facebook/sam-vit-huge",
        sam_points_per_side: int = 32,
        grounding_model: str | None = "google/owlv2-base-patch16-ensemble",
        grounding_threshold: float = 0.1,
    ):
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: choose 'think' (plan, then draw; SRUM) or 'plain'")
        if judge not in JUDGES:
            raise ValueError(f"judge={judge!r}: choose one of {', '.join(JUDGES)}")
        if cfg_renorm not in RENORMS:
            raise ValueError(f"cfg_renorm={cfg_renorm!r}: choose one of {', '.join(RENORMS)} (SRUM: global)")
        if not 0.0 <= cfg_interval[0] < cfg_interval[1] <= 1.0:
            raise ValueError(f"cfg_interval={cfg_interval}: give (low, high) with 0 ≤ low < high ≤ 1 (SRUM: (0.4, 1))")
        if not timestep_shift > 0 or not train_timestep_shift > 0:
            raise ValueError("timestep shifts must be positive (SRUM: 3.0 sampling, 1.0 training)")
        if not 0.0 <= cond_dropout < 1.0:
            raise ValueError(f"cond_dropout={cond_dropout}: use a fraction in [0, 1) (SRUM keeps 0.1)")
        if image_cfg < 1.0:
            raise ValueError(f"image_cfg={image_cfg}: use 1.0 (off, SRUM) or more")
        self.model = model
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.name = f"bagel:{model_id}"
        self.arch: BagelArchitecture = model.arch
        self.mode = mode
        self.judge = judge
        largest = self.arch.max_latent_size * self.arch.token_size
        side = int(image_size or largest)
        if side % self.arch.token_size or not 0 < side <= largest:
            raise ValueError(
                f"image_size={side}: use a multiple of {self.arch.token_size} up to {largest} (the latent position "
                "table's reach)"
            )
        self._side = side
        self.image_cfg = float(image_cfg)
        self.cfg_interval = (float(cfg_interval[0]), float(cfg_interval[1]))
        self.timestep_shift = float(timestep_shift)
        self.cfg_renorm = cfg_renorm
        self.cfg_renorm_min = float(cfg_renorm_min)
        self.max_think_tokens = int(max_think_tokens)
        self.max_global_tokens = int(max_global_tokens)
        self.max_region_tokens = int(max_region_tokens)
        self.judge_think = bool(judge_think)
        self.judge_batch_size = int(judge_batch_size)
        self.cond_dropout = float(cond_dropout)
        self.train_timestep_shift = float(train_timestep_shift)
        model.transformer.gradient_checkpointing = bool(gradient_checkpointing)
        self.sam_model = sam_model
        self.sam_points_per_side = sam_points_per_side
        self.grounding_model = grounding_model
        self.grounding_threshold = grounding_threshold
        self._box_sources: dict[str, BoxSource] | None = None

        tok = tokenizer
        self.bos_id = tok.convert_tokens_to_ids("<|im_start|>")
        self.eos_id = tok.convert_tokens_to_ids("<|im_end|>")
        self.soi_id = tok.convert_tokens_to_ids("<|vision_start|>")
        self.eoi_id = tok.convert_tokens_to_ids("<|vision_end|>")
        self._yes_ids, self._no_ids = self._answer_token_ids()

    # ------------------------------------------------------------------------------------------------------
    # Geometry

    @property
    def device(self) -> torch.device:
        return self.model.transformer.embed_tokens.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.transformer.embed_tokens.weight.dtype

    @property
    def image_size(self) -> tuple[int, int]:
        return self._side, self._side

    @property
    def token_size(self) -> int:
        return self.arch.token_size

    def token_grid(self, width: int, height: int) -> tuple[int, int]:
        ts = self.token_size
        if width % ts or height % ts:
            raise ValueError(f"BAGEL images must have sides that are multiples of {ts}; got {width}×{height}")
        return height // ts, width // ts

    # ------------------------------------------------------------------------------------------------------
    # Text

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        """Generated ids → text as the official inference cuts it (between ``<|im_start|>`` and ``<|im_end|>``)."""
        # Ids past the tokenizer (the embedding's spare rows) have no text; a trained model never writes them.
        known = [i for i in ids if i < len(self.tokenizer)]
        text = self.tokenizer.decode(
            [self.bos_id, *known], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )
        text = text.split("<|im_end|>")[0]
        parts = text.split("<|im_start|>")
        return parts[1] if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------------------------------------------------
    # Images for understanding

    def vit_pixels(self, image: Any) -> torch.Tensor:
        """An image as the understanding path reads it: resized as BAGEL's inference does (first to the VAE-side
        limits, then to SigLIP's: longest side ≤ image_size, sides multiples of the patch) → (3, H, W) in [-1, 1]."""
        image = _as_pil(image)
        vae_max = self.arch.max_latent_size * self.arch.token_size
        w, h = bagel_resize_size(*image.size, vae_max, min(_VAE_MIN_SIDE, vae_max), self.arch.token_size)
        image = _resize(image, (w, h))
        vit = self.arch.vit
        vit_max = int(vit.image_size)
        w, h = bagel_resize_size(*image.size, vit_max, min(_VIT_MIN_SIDE, vit_max), int(vit.patch_size))
        return _to_unit_range(_resize(image, (w, h)))

    # ------------------------------------------------------------------------------------------------------
    # The sequence machinery

    def _embed(self, ids: Sequence[int]) -> torch.Tensor:
        return self.model.transformer.embed_tokens(torch.tensor(list(ids), dtype=torch.long, device=self.device))

    def prefill(self, rows: Sequence[Sequence[Segment]], extra: int = 0, keep_hidden: bool = False) -> _Context:
        """Run the understanding expert over each row's context; keep keys/values with room for ``extra`` more
        (and, with ``keep_hidden``, the last layer's states of every position, for checks).

        Text segments become ``<|im_start|> ids <|im_end|>`` (causal, one position per token); image segments
        ``<|vision_start|> SigLIP tokens <|vision_end|>`` (bidirectional inside, one shared position).
        """
        transformer = self.model.transformer
        vision_cache: dict[int, torch.Tensor] = {}
        embeds, positions, blocks = [], [], []
        for row in rows:
            parts, pos, blk = [], [], []
            r = 0
            for kind, value in row:
                if kind == "text":
                    ids = [self.bos_id, *value, self.eos_id]
                    parts.append(self._embed(ids))
                    pos += list(range(r, r + len(ids)))
                    blk += [-1] * len(ids)
                    r += len(ids)
                elif kind == "image":
                    key = id(value)
                    if key not in vision_cache:
                        vision_cache[key] = self.model.vision(value[None].to(self.device))[0]
                    tokens = vision_cache[key].to(self.dtype)
                    parts += [self._embed([self.soi_id]), tokens, self._embed([self.eoi_id])]
                    n = tokens.shape[0] + 2
                    pos += [r] * n
                    blk += [len(blk)] * n  # a unique id per image block
                    r += 1
                else:
                    raise ValueError(f"unknown segment kind {kind!r}")
            embeds.append(torch.cat(parts) if parts else self._embed([])[:0])
            positions.append((pos, r))
            blocks.append(blk)
        lengths = [e.shape[0] for e in embeds]
        rows_n, length = len(rows), max(lengths + [1])
        hidden = torch.zeros(rows_n, length, self.arch.hidden_size, dtype=self.dtype, device=self.device)
        pos_t = torch.zeros(rows_n, length, dtype=torch.long)
        blk_t = torch.full((rows_n, length), -1, dtype=torch.long)
        valid = torch.zeros(rows_n, length, dtype=torch.bool)
        next_pos = torch.zeros(rows_n, dtype=torch.long)
        for i, (e, (pos, r), blk) in enumerate(zip(embeds, positions, blocks)):
            n = e.shape[0]
            hidden[i, :n] = e
            pos_t[i, :n] = torch.tensor(pos, dtype=torch.long)
            blk_t[i, :n] = torch.tensor(blk, dtype=torch.long)
            valid[i, :n] = True
            next_pos[i] = r
        q = torch.arange(length)
        same_block = (blk_t[:, :, None] == blk_t[:, None, :]) & (blk_t[:, :, None] >= 0)
        allowed = valid[:, None, :] & ((q[None, None, :] <= q[None, :, None]) | same_block)
        allowed |= torch.eye(length, dtype=torch.bool)[None]  # padding queries attend to themselves (no NaN)
        out, presents = transformer(hidden, pos_t.to(self.device), allowed[:, None].to(self.device))
        cap = length + extra
        keys, values = [], []
        for k, v in presents:
            if extra:
                k = torch.cat([k, k.new_zeros(*k.shape[:2], extra, k.shape[-1])], dim=2)
                v = torch.cat([v, v.new_zeros(*v.shape[:2], extra, v.shape[-1])], dim=2)
            keys.append(k)
            values.append(v)
        valid_cap = torch.zeros(rows_n, cap, dtype=torch.bool)
        valid_cap[:, :length] = valid
        return _Context(keys, values, valid_cap.to(self.device), next_pos.to(self.device), length,
                        hidden=out if keep_hidden else None)

    def _step_text(self, ctx: _Context, tokens: torch.Tensor) -> torch.Tensor:
        """Feed one token per row at its next position, append its keys/values; returns logits (R, vocab)."""
        transformer = self.model.transformer
        n = ctx.length
        if n >= ctx.valid.shape[1]:
            raise RuntimeError("the text cache is full; prefill with more room (extra=...)")
        ctx.valid[:, n] = True
        mask = ctx.valid[:, None, None, : n + 1]
        hidden, presents = transformer(
            self.model.transformer.embed_tokens(tokens)[:, None], ctx.next_pos[:, None], mask, past=ctx.past()
        )
        for layer, (k, v) in enumerate(presents):
            ctx.keys[layer][:, :, n : n + 1] = k
            ctx.values[layer][:, :, n : n + 1] = v
        ctx.length = n + 1
        ctx.next_pos = ctx.next_pos + 1
        return transformer.lm_head(hidden[:, -1]).float()

    @torch.no_grad()
    def generate_text(self, rows: Sequence[Sequence[Segment]], max_length: int) -> list[str]:
        """Greedy answers from ``<|im_start|>`` to ``<|im_end|>``, at most ``max_length − 1`` tokens each (the
        official count, which includes the start token)."""
        max_new = max(0, int(max_length) - 1)
        ctx = self.prefill(rows, extra=max_new)
        rows_n = len(rows)
        tokens = torch.full((rows_n,), self.bos_id, dtype=torch.long, device=self.device)
        out: list[list[int]] = [[] for _ in range(rows_n)]
        done = [False] * rows_n
        for _ in range(max_new):
            nxt = self._step_text(ctx, tokens).argmax(-1)
            for i, t in enumerate(nxt.tolist()):
                if done[i]:
                    continue
                if t == self.eos_id:
                    done[i] = True
                else:
                    out[i].append(t)
            if all(done):
                break
            tokens = nxt
        return [self.decode(ids) for ids in out]

    @torch.no_grad()
    def next_token_logits(self, rows: Sequence[Sequence[Segment]]) -> torch.Tensor:
        """Logits (R, vocab) of the first answer token after each context (``<|im_start|>`` fed)."""
        ctx = self.prefill(rows, extra=1)
        return self._step_text(ctx, torch.full((len(rows),), self.bos_id, dtype=torch.long, device=self.device))

    # ------------------------------------------------------------------------------------------------------
    # The flow

    def latent_grid(self) -> tuple[int, int]:
        return self.token_grid(self._side, self._side)

    def _latent_block(self, x: torch.Tensor, t: torch.Tensor, rows_hw: tuple[int, int]) -> torch.Tensor:
        """Embeddings of ``<|vision_start|> latents <|vision_end|>``: x (R, N, token_dim), t (R,) → (R, N+2, D)."""
        transformer = self.model.transformer
        rows_n = x.shape[0]
        h, w = rows_hw
        ids = grid_position_ids(h, w, self.arch.max_latent_size).to(self.device)
        lat = transformer.vae2llm(x.to(self.dtype))
        lat = (
            lat
            + transformer.time_embedder(t.to(self.device))[:, None]
            + transformer.latent_pos_embed[ids][None].to(self.dtype)
        )
        soi = transformer.embed_tokens(torch.full((rows_n, 1), self.soi_id, device=self.device))
        eoi = transformer.embed_tokens(torch.full((rows_n, 1), self.eoi_id, device=self.device))
        return torch.cat([soi, lat.to(soi.dtype), eoi], dim=1)

    def velocity(self, ctx: _Context, x: torch.Tensor, t: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """The generation expert's velocity for latent tokens ``x`` (R, N, token_dim) on a ``grid`` (rows, cols)
        at times ``t`` (R,), each row after its context in ``ctx``."""
        block = self._latent_block(x, t, grid)
        n = x.shape[1]
        rows_n = x.shape[0]
        mask = torch.cat([ctx.valid[:, : ctx.length], ctx.valid.new_ones(rows_n, n + 2)], dim=1)[:, None, None]
        positions = ctx.next_pos[:, None].expand(rows_n, n + 2)
        hidden, _ = self.model.transformer(block, positions, mask, past=ctx.past(), span=(1, n + 1))
        return self.model.transformer.llm2vae(hidden[:, 1 : n + 1])

    def timesteps(self, steps: int) -> torch.Tensor:
        """The shifted schedule from 1 to 0 (``steps`` points; the sampler takes ``steps − 1`` Euler steps)."""
        t = torch.linspace(1.0, 0.0, steps)
        s = self.timestep_shift
        return s * t / (1 + (s - 1) * t)

    def _guided(
        self,
        v_cond: torch.Tensor,
        v_text: torch.Tensor | None,
        v_img: torch.Tensor | None,
        text_scale: float,
        img_scale: float,
    ) -> torch.Tensor:
        """Two-level CFG with renormalisation (each image on its own; the official code's batch of one)."""
        if v_text is None:
            return v_cond
        if self.cfg_renorm == "text_channel":
            guided = v_text + text_scale * (v_cond - v_text)
            scale = v_cond.norm(dim=-1, keepdim=True) / (guided.norm(dim=-1, keepdim=True) + 1e-8)
            guided = guided * scale.clamp(min=self.cfg_renorm_min, max=1.0)
            return guided if v_img is None else v_img + img_scale * (guided - v_img)
        guided = v_text + text_scale * (v_cond - v_text)
        if v_img is not None:
            guided = v_img + img_scale * (guided - v_img)
        if self.cfg_renorm == "global":
            norm_c = v_cond.flatten(1).norm(dim=1)[:, None, None]
            norm_g = guided.flatten(1).norm(dim=1)[:, None, None]
        else:
            norm_c = v_cond.norm(dim=-1, keepdim=True)
            norm_g = guided.norm(dim=-1, keepdim=True)
        return guided * (norm_c / (norm_g + 1e-8)).clamp(min=self.cfg_renorm_min, max=1.0)

    def initial_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """(B, N, token_dim) float32 on the CPU: each image's noise from its own seeded generator."""
        n = math.prod(self.latent_grid())
        return torch.stack(
            [torch.randn(n, self.arch.token_dim, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        )

    @torch.no_grad()
    def sample_latents(
        self,
        cond_rows: Sequence[Sequence[Segment]],
        uncond_rows: Sequence[Sequence[Segment]],
        image_rows: Sequence[Sequence[Segment]] | None,
        seeds: Sequence[int],
        steps: int,
        guidance: float,
        callback: Any = None,
    ) -> torch.Tensor:
        """Euler flow sampling with CFG: ``(B, N, token_dim)`` float32 clean latent tokens."""
        b = len(cond_rows)
        use_text = guidance > 1.0
        # As the official sampler: image CFG only acts inside text CFG.
        use_img = use_text and image_rows is not None and self.image_cfg > 1.0
        rows = list(cond_rows) + (list(uncond_rows) if use_text else []) + (list(image_rows) if use_img else [])
        ctx = self.prefill(rows)
        x = self.initial_noise(seeds).to(self.device)
        ts = self.timesteps(steps)
        low, high = self.cfg_interval
        for i in range(steps - 1):
            t = float(ts[i])
            dt = float(ts[i] - ts[i + 1])
            in_interval = low < t <= high
            active = b * (1 + (use_text and in_interval) + (use_img and in_interval))
            sub = ctx if active == len(rows) else ctx.rows(torch.arange(active, device=self.device))
            reps = active // b
            v = self.velocity(sub, x.repeat(reps, 1, 1), torch.full((active,), t), self.latent_grid()).float()
            v_cond = v[:b]
            v_text = v[b : 2 * b] if active > b else None
            v_img = v[active - b :] if active > b and use_img else None
            v = self._guided(v_cond, v_text, v_img, guidance, self.image_cfg) if active > b else v_cond
            x = x - v * dt
            if callback is not None:
                callback(i + 1, steps - 1)
        return x.cpu()

    # ------------------------------------------------------------------------------------------------------
    # Latents ↔ pixels

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, h·w, p·p·C) → (B, C, h·p, w·p) (the official ``n h w p q c → n c (h p) (w q)``)."""
        h, w = grid
        p, c = self.arch.latent_patch_size, self.arch.latent_channels
        x = tokens.reshape(-1, h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(-1, c, h * p, w * p)

    def patchify(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, h·p, w·p) → (B, h·w, p·p·C), the inverse of :meth:`unpatchify`."""
        p = self.arch.latent_patch_size
        b, c, hh, ww = latents.shape
        x = latents.reshape(b, c, hh // p, p, ww // p, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(b, (hh // p) * (ww // p), p * p * c)

    @torch.no_grad()
    def decode_latents(self, tokens: torch.Tensor, grid: tuple[int, int] | None = None) -> np.ndarray:
        """(B, N, token_dim) → (B, H, W, 3) uint8, one image at a time (VAE memory at 1024²)."""
        grid = grid or self.latent_grid()
        vae = self.model.vae
        images = []
        for one in tokens:
            z = self.unpatchify(one[None].to(self.device, self.dtype), grid)
            pixels = vae.decode(z / _FLUX_SCALE + _FLUX_SHIFT).sample.float()
            # As the official decoder: [-1, 1] → [0, 1], clamped, ×255, truncated to uint8.
            pixels = ((pixels * 0.5 + 0.5).clamp(0, 1) * 255).to(torch.uint8)
            images.append(pixels[0].permute(1, 2, 0).cpu().numpy())
        return np.stack(images)

    @torch.no_grad()
    def encode_image(self, image: Any) -> torch.Tensor:
        """A PIL image → its latent tokens (N, token_dim) float32 on the CPU (VAE posterior mean)."""
        pixels = _to_unit_range(_as_pil(image))[None].to(self.device, self.dtype)
        z = self.model.vae.encode(pixels).latent_dist.mean
        return self.patchify((z.float() - _FLUX_SHIFT) * _FLUX_SCALE)[0].cpu()

    # ------------------------------------------------------------------------------------------------------
    # Generation

    def plans(self, prompts: Sequence[str]) -> list[str]:
        """Think mode's first half: the plan the model writes for each prompt (greedy)."""
        system = self.encode(GEN_THINK_SYSTEM_PROMPT)
        return self.generate_text(
            [[("text", system), ("text", self.encode(p))] for p in prompts], self.max_think_tokens
        )

    def generate(
        self,
        prompts: Sequence[str],
        seeds: Sequence[int],
        config: GenerationConfig | None = None,
        callback: ProgressCallback | None = None,
    ) -> list[Sample]:
        """One image per (prompt, seed) at ``image_size``; ``config.steps`` schedule points (SRUM: 50) and text CFG
        ``config.guidance`` (SRUM: 4; ≤ 1 turns CFG off). ``config=None`` uses SRUM's settings.

        ``Sample.payload``: the (N, token_dim) float32 latent tokens of the saved image (VAE posterior mean), so a
        sample re-read from disk trains exactly like a fresh one. ``settings`` records the sampler, the mode and,
        in think mode, the ``plan``.
        """
        from PIL import Image

        config = config or GenerationConfig(**GENERATION_DEFAULTS)
        if len(prompts) != len(seeds):
            raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
        if config.steps < 2:
            raise ValueError(f"steps={config.steps}: BAGEL's sampler needs at least 2 schedule points (SRUM uses 50)")
        samples: list[Sample] = []
        total = len(prompts)
        for start in range(0, total, config.batch_size):
            batch = [str(p) for p in prompts[start : start + config.batch_size]]
            batch_seeds = [int(s) for s in seeds[start : start + config.batch_size]]
            mode = config.mode or self.mode
            system = [("text", self.encode(GEN_THINK_SYSTEM_PROMPT))] if mode == "think" else []
            plans = self.plans(batch) if mode == "think" else [None] * len(batch)
            cond = [
                system + [("text", self.encode(p))] + ([("text", self.encode(plan))] if plan is not None else [])
                for p, plan in zip(batch, plans)
            ]
            uncond = [list(system) for _ in batch]
            image_rows = [system + [("text", self.encode(p))] for p in batch]

            def report(step: int, steps: int, done: int = len(samples)) -> None:
                if callback is not None:
                    callback(ProgressEvent("generate", done, total, message=f"flow step {step}/{steps}"))

            latents = self.sample_latents(cond, uncond, image_rows, batch_seeds, config.steps, config.guidance, report)
            pixels = self.decode_latents(latents)
            for prompt, seed, plan, array in zip(batch, batch_seeds, plans, pixels):
                image = Image.fromarray(array, "RGB")
                settings = {
                    "backend": self.name,
                    "mode": mode,
                    "plan": plan,
                    "steps": int(config.steps),
                    "guidance": float(config.guidance),
                    "image_cfg": self.image_cfg,
                    "cfg_interval": list(self.cfg_interval),
                    "timestep_shift": self.timestep_shift,
                    "cfg_renorm": self.cfg_renorm,
                    "size": [self._side, self._side],
                    "sampler": "flow-euler",
                }
                samples.append(
                    Sample(prompt=prompt, seed=seed, image=image, payload=self.encode_image(image), settings=settings)
                )
            if callback is not None:
                callback(ProgressEvent("generate", len(samples), total, preview=samples[-1].image))
        return samples

    # ------------------------------------------------------------------------------------------------------
    # Self-judging

    def _answer_token_ids(self) -> tuple[list[int], list[int]]:
        def first_ids(words: Sequence[str]) -> list[int]:
            found: list[int] = []
            for word in words:
                ids = self.encode(word)
                if ids and ids[0] not in found:
                    found.append(ids[0])
            return found

        yes = first_ids(["Yes", " Yes", "yes", " yes"])
        no = first_ids(["No", " No", "no", " no"])
        shared = set(yes) & set(no)
        yes, no = [i for i in yes if i not in shared], [i for i in no if i not in shared]
        if not yes or not no:
            raise ValueError("the tokenizer does not separate 'Yes' from 'No' in its first token; use judge='rubric'")
        return yes, no

    def _question_rows(self, images: Sequence[Any], questions: Sequence[str], think: bool) -> list[list[Segment]]:
        system = [("text", self.encode(VLM_THINK_SYSTEM_PROMPT))] if think else []
        return [
            system + [("image", self.vit_pixels(img)), ("text", self.encode(q))] for img, q in zip(images, questions)
        ]

    @torch.no_grad()
    def yes_probability(self, images: Sequence[Any], questions: Sequence[str]) -> list[float]:
        """``P(Yes) / (P(Yes) + P(No))`` of the first answer token, per (image, question)."""
        probs: list[float] = []
        for start in range(0, len(images), self.judge_batch_size):
            rows = self._question_rows(
                images[start : start + self.judge_batch_size],
                questions[start : start + self.judge_batch_size],
                think=False,
            )
            logp = torch.log_softmax(self.next_token_logits(rows), dim=-1)
            lp_yes = torch.logsumexp(logp[:, self._yes_ids], dim=-1)
            lp_no = torch.logsumexp(logp[:, self._no_ids], dim=-1)
            probs.extend(torch.sigmoid(lp_yes - lp_no).tolist())
        return probs

    def answer(self, images: Sequence[Any], questions: Sequence[str], max_length: int) -> list[str]:
        """Greedy answers (think mode if ``judge_think``), one per (image, question), batched."""
        answers: list[str] = []
        for start in range(0, len(images), self.judge_batch_size):
            rows = self._question_rows(
                images[start : start + self.judge_batch_size],
                questions[start : start + self.judge_batch_size],
                think=self.judge_think,
            )
            answers.extend(self.generate_text(rows, max_length))
        return answers

    def judge_global(self, image: Any, prompt: str, config: JudgeConfig) -> GlobalJudgement:
        image = _as_pil(image)
        if self.judge == "likelihood":
            question = fill_template(config.global_template, prompt=prompt)
            p = self.yes_probability([image], [question])[0]
            return _likelihood_global(p, question)
        from ..parsing import parse_global_response

        question = fill_template(GLOBAL_RUBRIC, prompt=prompt)
        return parse_global_response(self.answer([image], [question], self.max_global_tokens)[0], question=question)

    def judge_regions(
        self, image: Any, prompt: str, regions: Sequence[Region], config: JudgeConfig
    ) -> list[RegionJudgement]:
        """One judgement per region, in order; ``config.region_view``: ``coords`` (SRUM: pixel boxes in the text),
        ``boxes`` (numbered boxes drawn) or ``crop`` (one request per cropped region)."""
        image = _as_pil(image)
        width, height = image.size
        regions = [r.clamped(width, height) for r in regions]
        if not regions:
            return []
        view = config.region_view
        if self.judge == "likelihood":
            shown, questions = [], []
            boxed = draw_numbered_boxes(image, regions) if view == "boxes" else None
            for k, region in enumerate(regions, start=1):
                x1, y1, x2, y2 = region.box
                where = {
                    "crop": "this image",
                    "boxes": f"box {k} (drawn and numbered on the image)",
                    "coords": f"the box [{x1}, {y1}, {x2}, {y2}] (pixels)",
                }[view]
                questions.append(
                    fill_template(
                        config.region_template, prompt=prompt, region=where, object=region.label or "whatever it shows"
                    )
                )
                shown.append(_crop(image, region) if view == "crop" else (boxed if view == "boxes" else image))
            probs = self.yes_probability(shown, questions)
            return [_likelihood_region(r, p, q) for r, p, q in zip(regions, probs, questions)]

        from ..parsing import parse_region_response

        note = _VIEW_NOTES[view].format(width=width, height=height)
        if view == "crop":
            questions = [
                fill_template(REGION_RUBRIC, prompt=prompt, view_note=note, regions=region_listing([r], view))
                for r in regions
            ]
            texts = self.answer([_crop(image, r) for r in regions], questions, self.max_region_tokens)
            return [parse_region_response(t, [r], question=q)[0] for t, r, q in zip(texts, regions, questions)]
        question = fill_template(REGION_RUBRIC, prompt=prompt, view_note=note, regions=region_listing(regions, view))
        shown = draw_numbered_boxes(image, regions) if view == "boxes" else image
        return parse_region_response(
            self.answer([shown], [question], self.max_region_tokens)[0], regions, question=question
        )

    # ------------------------------------------------------------------------------------------------------
    # Regions

    def box_sources(self) -> dict[str, BoxSource]:
        """``sam`` (SRUM's automatic masks, top-K by area) then ``grounding`` (OWLv2 on the prompt's objects),
        each when its model is set; models load on first use. ``segmenter`` (the model-free one) last."""
        if self._box_sources is None:
            sources: dict[str, BoxSource] = {}
            device = str(self.device.type)
            if self.sam_model:
                from ..boxes.sam import SamAutomaticBoxes

                sources["sam"] = SamAutomaticBoxes(self.sam_model, self.sam_points_per_side, device)
            if self.grounding_model:
                from ..boxes.owlv2 import Owlv2Grounding

                sources["grounding"] = Owlv2Grounding(self.grounding_model, self.grounding_threshold, device)
            from ..boxes.segmenter import SegmenterBoxes

            sources["segmenter"] = SegmenterBoxes()
            self._box_sources = sources
        return dict(self._box_sources)

    # ------------------------------------------------------------------------------------------------------
    # Training

    def _needs_context_grad(self) -> bool:
        return any(p.requires_grad for layer in self.model.transformer.layers for p in layer.und.parameters())

    def token_losses(
        self,
        samples: Sequence[Sample],
        generator: Any = None,
        timestep_shift: float | None = None,
        cond_dropout: float | None = None,
    ) -> torch.Tensor:
        """``(B, N)`` per-token ``mean_c (v_θ(x_t, t) − (ε − x0))²`` with grad, row-major over the latent grid.

        ``x_t = (1 − t)·x0 + t·ε``, ``t = shift·u / (1 + (shift − 1)·u)``, ``u = sigmoid(n)``, ``n ~ N(0, 1)``
        (``timestep_shift`` default 1.0, SRUM's scripts); each prompt is dropped (empty context) with probability
        ``cond_dropout`` (default 0.1). ``generator``: a CPU ``torch.Generator`` for n, ε and the dropout draws.
        """
        if not samples:
            raise ValueError("token_losses needs at least one sample")
        shift = self.train_timestep_shift if timestep_shift is None else float(timestep_shift)
        p_drop = self.cond_dropout if cond_dropout is None else float(cond_dropout)
        x0 = torch.stack(
            [
                torch.as_tensor(s.payload, dtype=torch.float32) if s.payload is not None else self.encode_image(s.image)
                for s in samples
            ]
        )
        n_tokens = math.prod(self.token_grid(*_as_pil(samples[0].image).size))
        if x0.shape[1] != n_tokens:
            raise ValueError(f"sample payloads hold {x0.shape[1]} latent tokens; images of this size have {n_tokens}")
        b = x0.shape[0]
        u = torch.sigmoid(torch.randn(b, generator=generator))
        t = shift * u / (1 + (shift - 1) * u)
        eps = torch.randn(x0.shape, generator=generator)
        drop = (torch.rand(b, generator=generator) < p_drop).tolist()
        x_t = (1 - t[:, None, None]) * x0 + t[:, None, None] * eps
        target = (eps - x0).to(self.device)
        rows = [[] if d else [("text", self.encode(s.prompt))] for s, d in zip(samples, drop)]
        with torch.set_grad_enabled(torch.is_grad_enabled() and self._needs_context_grad()):
            ctx = self.prefill(rows)
        grid = self.token_grid(*_as_pil(samples[0].image).size)
        block = self._latent_block(x_t.to(self.device), t, grid)
        n = x_t.shape[1]
        mask = torch.cat([ctx.valid[:, : ctx.length], ctx.valid.new_ones(b, n + 2)], dim=1)[:, None, None]
        positions = ctx.next_pos[:, None].expand(b, n + 2)
        hidden, _ = self.model.transformer(block, positions, mask, past=ctx.past(), span=(1, n + 1))
        v = self.model.transformer.llm2vae(hidden[:, 1 : n + 1]).float()
        return (v - target).pow(2).mean(-1)

    def trainable_module(self) -> Any:
        """The transformer (both experts, embeddings, head, latent in/out, time embedder); ViT and VAE are not in
        it, so they never train."""
        return self.model.transformer

    def lora_target_modules(self) -> str:
        """A peft regex over the generation expert's attention and MLP projections only (SRUM trains drawing;
        the understanding expert that judges stays exactly as it was)."""
        return r"layers\.\d+\.gen\.(self_attn\.(q_proj|k_proj|v_proj|o_proj)|mlp\.(gate_proj|up_proj|down_proj))"


__all__ = [
    "BACKEND_ALIASES",
    "DEFAULT_MODEL",
    "GENERATION_DEFAULTS",
    "GLOBAL_RUBRIC",
    "JUDGES",
    "MODES",
    "PARITY",
    "REGION_RUBRIC",
    "SRUM_MODEL",
    "BagelArchitecture",
    "BagelBackend",
    "BagelModel",
    "LoadReport",
    "bagel_cpu_warning",
    "build_model",
    "clear_bagel_cache",
    "flux_vae_key",
    "init_random_",
    "load_bagel",
    "official_key",
    "published_architecture",
    "resolve_model_id",
]
