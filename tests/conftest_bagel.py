"""A tiny random BAGEL written in the official ``ByteDance-Seed/BAGEL-7B-MoT`` layout, offline.

The key names and shapes below are BAGEL's published checkpoint layout, written out independently of the
backend's own key mapping, so loading the folder tests that mapping: ``llm_config.json``, ``vit_config.json``
(which names one ViT layer more than the checkpoint holds, as the published files do), ``ema.safetensors``
(language model with ``*_moe_gen`` generation expert, SigLIP with its patch embedding stored as a linear layer,
connector, timestep embedder, ``vae2llm``/``llm2vae``, the two sin-cos tables), ``ae.safetensors`` (FLUX
autoencoder names) and Qwen2 tokenizer files (vocab.json, merges.txt, tokenizer.json).

Sizes: language model width 32 (4 query heads, 2 key/value heads of 8), 2 layers; SigLIP width 32 on 32² inputs
in 4-pixel patches; autoencoder ×8 with 4 latent channels; 2×2 latent patches → 16-pixel tokens, 64² images as a
4×4 token grid.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>"]
_CORPUS = [
    "Yes No yes no Yes, No. Score: 0.5 Reason: the layout matches the prompt. Identified Object: a red car",
    "Region ID: 1 Bounding Box: [0, 0, 32, 64] --- <think> plan the image </think> a detailed prompt",
    "a green bench and a red car, three dogs and two cats, a book on the left of a bird, a blue cup",
    "You should first think about the planning process in the mind and then generate the image.",
    "You should first think about the reasoning process in the mind and then provide the user with the answer.",
]
TINY = {
    "hidden": 32,
    "intermediate": 64,
    "layers": 2,
    "heads": 4,
    "kv_heads": 2,
    "vit_hidden": 32,
    "vit_intermediate": 64,
    "vit_heads": 4,
    "vit_config_layers": 2,  # the checkpoint holds one fewer, as BAGEL's
    "vit_image": 32,
    "vit_patch": 4,
    "ae_ch": 32,
    "ae_mult": (1, 1, 2, 2),
    "ae_blocks": 1,
    "z": 4,
    "latent_patch": 2,
    "max_latent": 4,
}


def build_tokenizer(path: Path) -> int:
    """Train a small byte-level BPE, save it as Qwen2 tokenizer files; returns the vocabulary size."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(_CORPUS, trainer)
    model = json.loads(bpe.to_str())["model"]
    vocab = dict(model["vocab"])
    merges = [" ".join(m) if isinstance(m, list) else m for m in model["merges"]]
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (path / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    tokenizer = Qwen2Tokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"))
    tokenizer.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    tokenizer.save_pretrained(str(path))
    return len(tokenizer)


def _g(generator: torch.Generator, *shape: int, std: float) -> torch.Tensor:
    return torch.randn(*shape, generator=generator) * std


def _sincos(dim: int, side: int) -> torch.Tensor:
    """The published sin-cos table values: columns in the first half, rows in the second, [sin, cos] each."""
    half = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / half)
    rows = torch.arange(side, dtype=torch.float64).repeat_interleave(side)
    cols = torch.arange(side, dtype=torch.float64).repeat(side)

    def axis(p: torch.Tensor) -> torch.Tensor:
        a = p[:, None] * omega[None]
        return torch.cat([a.sin(), a.cos()], dim=1)

    return torch.cat([axis(cols), axis(rows)], dim=1).float()


def ema_tensors(vocab: int, g: torch.Generator, std: float = 0.1) -> dict[str, torch.Tensor]:
    """Every tensor of a tiny ``ema.safetensors``, official names."""
    t = TINY
    h, inter, hd = t["hidden"], t["intermediate"], t["hidden"] // t["heads"]
    kv = t["kv_heads"] * hd
    out: dict[str, torch.Tensor] = {
        "language_model.model.embed_tokens.weight": _g(g, vocab, h, std=1.0),
        "language_model.model.norm.weight": 1 + _g(g, h, std=0.1),
        "language_model.model.norm_moe_gen.weight": 1 + _g(g, h, std=0.1),
        "language_model.lm_head.weight": _g(g, vocab, h, std=std),
    }
    for i in range(t["layers"]):
        for suffix in ("", "_moe_gen"):
            p = f"language_model.model.layers.{i}."
            out[p + f"self_attn.q_proj{suffix}.weight"] = _g(g, h, h, std=std)
            out[p + f"self_attn.q_proj{suffix}.bias"] = _g(g, h, std=std)
            out[p + f"self_attn.k_proj{suffix}.weight"] = _g(g, kv, h, std=std)
            out[p + f"self_attn.k_proj{suffix}.bias"] = _g(g, kv, std=std)
            out[p + f"self_attn.v_proj{suffix}.weight"] = _g(g, kv, h, std=std)
            out[p + f"self_attn.v_proj{suffix}.bias"] = _g(g, kv, std=std)
            out[p + f"self_attn.o_proj{suffix}.weight"] = _g(g, h, h, std=std)
            out[p + f"self_attn.q_norm{suffix}.weight"] = 1 + _g(g, hd, std=0.1)
            out[p + f"self_attn.k_norm{suffix}.weight"] = 1 + _g(g, hd, std=0.1)
            out[p + f"mlp{suffix}.gate_proj.weight"] = _g(g, inter, h, std=std)
            out[p + f"mlp{suffix}.up_proj.weight"] = _g(g, inter, h, std=std)
            out[p + f"mlp{suffix}.down_proj.weight"] = _g(g, h, inter, std=std)
            out[p + f"input_layernorm{suffix}.weight"] = 1 + _g(g, h, std=0.1)
            out[p + f"post_attention_layernorm{suffix}.weight"] = 1 + _g(g, h, std=0.1)
    token_dim = t["latent_patch"] ** 2 * t["z"]
    out.update(
        {
            "time_embedder.mlp.0.weight": _g(g, h, 256, std=std),
            "time_embedder.mlp.0.bias": _g(g, h, std=std),
            "time_embedder.mlp.2.weight": _g(g, h, h, std=std),
            "time_embedder.mlp.2.bias": _g(g, h, std=std),
            "vae2llm.weight": _g(g, h, token_dim, std=0.5),
            "vae2llm.bias": _g(g, h, std=std),
            "llm2vae.weight": _g(g, token_dim, h, std=0.5),
            "llm2vae.bias": _g(g, token_dim, std=std),
            "latent_pos_embed.pos_embed": _sincos(h, t["max_latent"]),
        }
    )
    vh, vi, vp = t["vit_hidden"], t["vit_intermediate"], t["vit_patch"]
    side = t["vit_image"] // vp
    v = "vit_model.vision_model."
    out[v + "embeddings.patch_embedding.weight"] = _g(g, vh, 3 * vp * vp, std=0.2)
    out[v + "embeddings.patch_embedding.bias"] = _g(g, vh, std=std)
    out[v + "embeddings.position_embedding.weight"] = _g(g, side * side, vh, std=std)
    for i in range(t["vit_config_layers"] - 1):
        p = f"{v}encoder.layers.{i}."
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            out[p + f"self_attn.{name}.weight"] = _g(g, vh, vh, std=std)
            out[p + f"self_attn.{name}.bias"] = _g(g, vh, std=std)
        for name in ("layer_norm1", "layer_norm2"):
            out[p + f"{name}.weight"] = 1 + _g(g, vh, std=0.1)
            out[p + f"{name}.bias"] = _g(g, vh, std=std)
        out[p + "mlp.fc1.weight"] = _g(g, vi, vh, std=std)
        out[p + "mlp.fc1.bias"] = _g(g, vi, std=std)
        out[p + "mlp.fc2.weight"] = _g(g, vh, vi, std=std)
        out[p + "mlp.fc2.bias"] = _g(g, vh, std=std)
    out[v + "post_layernorm.weight"] = 1 + _g(g, vh, std=0.1)
    out[v + "post_layernorm.bias"] = _g(g, vh, std=std)
    out["connector.fc1.weight"] = _g(g, h, vh, std=0.3)
    out["connector.fc1.bias"] = _g(g, h, std=std)
    out["connector.fc2.weight"] = _g(g, h, h, std=0.3)
    out["connector.fc2.bias"] = _g(g, h, std=std)
    out["vit_pos_embed.pos_embed"] = _sincos(h, side)
    return out


def ae_tensors(g: torch.Generator) -> dict[str, torch.Tensor]:
    """Every tensor of a tiny FLUX ``ae.safetensors`` (encoder/decoder, LDM names)."""
    t = TINY
    ch, mult, blocks, z = t["ae_ch"], t["ae_mult"], t["ae_blocks"], t["z"]
    out: dict[str, torch.Tensor] = {}

    def conv(name: str, cout: int, cin: int, k: int) -> None:
        out[name + ".weight"] = _g(g, cout, cin, k, k, std=1.0 / math.sqrt(cin * k * k))
        out[name + ".bias"] = _g(g, cout, std=0.02)

    def norm(name: str, c: int) -> None:
        out[name + ".weight"] = 1 + _g(g, c, std=0.1)
        out[name + ".bias"] = _g(g, c, std=0.02)

    def resnet(name: str, cin: int, cout: int) -> None:
        norm(name + ".norm1", cin)
        conv(name + ".conv1", cout, cin, 3)
        norm(name + ".norm2", cout)
        conv(name + ".conv2", cout, cout, 3)
        if cin != cout:
            conv(name + ".nin_shortcut", cout, cin, 1)

    def mid(part: str, c: int) -> None:
        resnet(f"{part}.mid.block_1", c, c)
        norm(f"{part}.mid.attn_1.norm", c)
        for name in ("q", "k", "v", "proj_out"):
            conv(f"{part}.mid.attn_1.{name}", c, c, 1)
        resnet(f"{part}.mid.block_2", c, c)

    conv("encoder.conv_in", ch, 3, 3)
    cin = ch
    for i, m in enumerate(mult):
        for j in range(blocks):
            resnet(f"encoder.down.{i}.block.{j}", cin, ch * m)
            cin = ch * m
        if i != len(mult) - 1:
            conv(f"encoder.down.{i}.downsample.conv", cin, cin, 3)
    mid("encoder", cin)
    norm("encoder.norm_out", cin)
    conv("encoder.conv_out", 2 * z, cin, 3)

    top = ch * mult[-1]
    conv("decoder.conv_in", top, z, 3)
    mid("decoder", top)
    cin = top
    for i in reversed(range(len(mult))):
        for j in range(blocks + 1):
            resnet(f"decoder.up.{i}.block.{j}", cin, ch * mult[i])
            cin = ch * mult[i]
        if i != 0:
            conv(f"decoder.up.{i}.upsample.conv", cin, cin, 3)
    norm("decoder.norm_out", cin)
    conv("decoder.conv_out", 3, cin, 3)
    return out


def build_tiny_bagel(path: Path, seed: int = 0, *, drop_from_ema: tuple[str, ...] = ()) -> Path:
    """Write a tiny random BAGEL folder in the official layout to ``path``.

    ``drop_from_ema``: substrings; matching keys are left out and the weights file is named
    ``model.safetensors`` (a partial fine-tune, as SRUM ships).
    """
    from safetensors.torch import save_file

    t = TINY
    vocab = build_tokenizer(path)
    vocab_size = vocab
    g = torch.Generator().manual_seed(seed)
    llm_config = {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": t["hidden"],
        "intermediate_size": t["intermediate"],
        "num_hidden_layers": t["layers"],
        "num_attention_heads": t["heads"],
        "num_key_value_heads": t["kv_heads"],
        "hidden_act": "silu",
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "sliding_window": 4096,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    vit_config = {
        "model_type": "siglip_vision_model",
        "hidden_size": t["vit_hidden"],
        "intermediate_size": t["vit_intermediate"],
        "num_attention_heads": t["vit_heads"],
        "num_hidden_layers": t["vit_config_layers"],
        "num_channels": 3,
        "image_size": t["vit_image"],
        "patch_size": t["vit_patch"],
        "hidden_act": "gelu_pytorch_tanh",
        "layer_norm_eps": 1e-6,
    }
    (path / "llm_config.json").write_text(json.dumps(llm_config, indent=2), encoding="utf-8")
    (path / "vit_config.json").write_text(json.dumps(vit_config, indent=2), encoding="utf-8")
    ema = ema_tensors(vocab_size, g)
    save_file(ae_tensors(g), str(path / "ae.safetensors"))
    if drop_from_ema:
        kept = {k: v for k, v in ema.items() if not any(s in k for s in drop_from_ema)}
        save_file(kept, str(path / "model.safetensors"))
    else:
        save_file(ema, str(path / "ema.safetensors"))
    return path
