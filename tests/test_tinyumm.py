"""TinyUMM pieces: tokenizer, patch geometry, dense labels, the model contract, sampling determinism, training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from srum_core.tinyumm.data import IGNORE, crop_resize, degrade, patch_labels
from srum_core.tinyumm.model import TinyUMM, flow_timesteps, patchify, sample_patches, unpatchify
from srum_core.tinyumm.tokenizer import WordTokenizer

WORDS = ("a", "red", "blue", "circle", "square", "to", "the", "left", "of")


def tiny_model(seed: int = 0) -> tuple[TinyUMM, WordTokenizer]:
    tok = WordTokenizer(WORDS, max_len=8)
    torch.manual_seed(seed)
    model = TinyUMM(vocab=list(tok.vocab), colors=["red", "blue"], shapes=["circle", "square"], textures=["solid"],
                    max_text_len=8, d_model=32, n_layers=2, n_heads=2)
    return model.eval(), tok


def test_tokenizer_encodes_pads_and_rejects_unknown_words():
    tok = WordTokenizer(WORDS, max_len=6)
    ids, mask = tok.encode(["A red, circle.", ""])
    assert ids.shape == mask.shape == (2, 6)
    assert ids[0, :4].tolist() == [tok.bos_id, tok.vocab.index("a"), tok.vocab.index("red"), tok.vocab.index("circle")]
    assert mask[0].tolist() == [True] * 4 + [False] * 2
    assert mask[1].tolist() == [True] + [False] * 5  # the null prompt is just <bos>
    assert tok.decode(ids[0].tolist()) == "a red circle"
    with pytest.raises(ValueError, match="does not know"):
        tok.ids("a green dog")
    with pytest.raises(ValueError, match="at most 5"):
        tok.ids("a red circle to the left of")


def test_patchify_is_row_major_and_inverted_by_unpatchify():
    img = torch.zeros(1, 3, 64, 64)
    img[0, :, 8:16, 16:24] = 1.0  # patch row 1, column 2
    p = patchify(img, 8)
    assert p.shape == (1, 64, 192)
    assert torch.nonzero(p.abs().sum(-1))[:, 1].tolist() == [1 * 8 + 2]
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(unpatchify(patchify(x, 8), 8, 64), x)


def test_patch_labels_hand_computed():
    ids = torch.zeros(1, 16, 16, dtype=torch.long)
    ids[0, 0:8, 0:8] = 1  # object 1 fills patch (0, 0)
    ids[0, 8:10, 8:9] = 2  # object 2 covers 2/64 of patch (1, 1): below the coverage threshold
    ids[0, 8:16, 0:2] = 2  # 16/64 = 25% of patch (1, 0): an object patch
    attrs = torch.full((1, 5, 3), IGNORE, dtype=torch.long)
    attrs[0, 1] = torch.tensor([0, 1, 0])
    attrs[0, 2] = torch.tensor([1, 0, 0])
    lab = patch_labels(ids, attrs, 8)
    assert lab["object"].tolist() == [[1.0, 0.0, 1.0, 0.0]]
    assert lab["color"].tolist() == [[0, IGNORE, 1, IGNORE]]
    assert lab["shape"].tolist() == [[1, IGNORE, 0, IGNORE]]


def test_crop_resize_keeps_labels_aligned():
    image = -torch.ones(3, 64, 64)
    ids = torch.zeros(64, 64, dtype=torch.long)
    image[:, 20:30, 40:50] = 1.0
    ids[20:30, 40:50] = 1
    crop, idc = crop_resize(image, ids, (40, 20, 50, 30), 64)
    assert crop.shape == (3, 64, 64) and idc.shape == (64, 64)
    assert bool((idc == 1).all()) and crop.mean() > 0.9


def test_degrade_keeps_range_and_clean_share_is_identity():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 64, 64) * 2 - 1
    assert torch.equal(degrade(x, gen, p_clean=1.0), x)
    y = degrade(x, gen, p_clean=0.0)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1 and not torch.equal(x, y)


def test_flow_timesteps_logit_normal_and_shift():
    t = flow_timesteps(4000, torch.Generator().manual_seed(0))
    assert 0 < float(t.min()) and float(t.max()) < 1
    assert abs(float(t.median()) - 0.5) < 0.03  # sigmoid(N(0, 1)) has median 0.5
    t3 = flow_timesteps(4000, torch.Generator().manual_seed(0), shift=3.0)
    assert torch.allclose(t3, 3 * t / (1 + 2 * t))
    assert float(t3.median()) > 0.7


def test_model_heads_shapes_and_x0_parametrised_velocity():
    model, tok = tiny_model()
    ids, mask = tok.encode(["a red circle", ""])
    xt = torch.randn(2, 64, 192)
    with torch.no_grad():
        out = model(ids, mask, xt, torch.tensor([0.3, 0.01]), torch.tensor([0, 1]))
    assert out["velocity"].shape == (2, 64, 192)
    assert out["yes"].shape == (2,)
    assert out["object"].shape == (2, 64)
    assert out["color"].shape == (2, 64, 2) and out["shape"].shape == (2, 64, 2) and out["texture"].shape == (2, 64, 1)
    # The x0 head starts at zero, so v = (x_t - 0) / t with t clipped at 0.05.
    assert torch.allclose(out["velocity"][0], xt[0] / 0.3) and torch.allclose(out["velocity"][1], xt[1] / 0.05)


def test_save_and_reload_reproduce_outputs(tmp_path):
    model, tok = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    assert json.loads((tmp_path / "config.json").read_text())["vocab"] == list(tok.vocab)
    again = TinyUMM.from_pretrained(str(tmp_path)).eval()
    # Bit-exactness is the contract for the saved state; outputs may differ in the last bits because the
    # reloaded tensors can have another memory layout, which changes the kernels' summation order.
    saved, loaded = model.state_dict(), again.state_dict()
    assert saved.keys() == loaded.keys()
    for key in saved:
        assert torch.equal(saved[key], loaded[key]), key
    ids, mask = tok.encode(["a blue square"])
    args = (ids, mask, torch.randn(1, 64, 192), torch.tensor([0.5]), torch.tensor([0]))
    with torch.no_grad():
        torch.testing.assert_close(model(*args)["velocity"], again(*args)["velocity"], rtol=1e-5, atol=1e-5)


def test_sampling_is_seeded_and_independent_of_batch_company():
    model, tok = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    alone = sample_patches(model, tok, ["a red circle"], [7], steps=3, guidance=2.0, chunk=4)
    crowd = sample_patches(model, tok, ["a blue square", "a red circle", "a red circle", "", "a blue square"],
                           [1, 7, 8, 2, 3], steps=3, guidance=2.0, chunk=4)
    assert alone.shape == (1, 64, 192)
    assert torch.equal(alone[0], crowd[1])
    assert not torch.equal(crowd[1], crowd[2])  # another seed, another image


def test_tiny_training_end_to_end_is_reproducible(tmp_path):
    from safetensors.torch import load_file

    from srum_core.tinyumm.train import TINY, train

    a = train(TINY, tmp_path / "a")
    train(TINY, tmp_path / "b")
    assert a["steps"] == TINY.steps
    for name in ("config.json", "README.md", "samples.png", "train_log.jsonl", "training_config.json"):
        assert (tmp_path / "a" / name).is_file(), name
    assert np.isfinite(a["final_metrics"]["loss"])
    wa = load_file(str(next((tmp_path / "a").glob("*.safetensors"))))
    wb = load_file(str(next((tmp_path / "b").glob("*.safetensors"))))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    init = tiny_model()[0]  # the EMA weights moved away from a fresh init's zero velocity head
    assert float(wa["velocity_head.weight"].abs().sum()) > 0 == float(init.velocity_head.weight.detach().abs().sum())


def test_tiny_training_trains_then_freezes_the_latent_codec(tmp_path):
    from srum_core.tinyumm.train import TINY, train

    summary = train(TINY, tmp_path / "m")
    assert summary["codec_steps"] == TINY.codec_steps and np.isfinite(summary["codec_final"]["codec_loss"])
    model = TinyUMM.from_pretrained(tmp_path / "m")
    # The latent statistics were measured (not the identity defaults) and survive save/load as buffers.
    assert not torch.equal(model.codec.latent_std, torch.ones(TINY.latent_channels))
    # The trunk's optimiser never sees the codec: its parameters are exactly the rest.
    n_codec = sum(p.numel() for p in model.codec.parameters())
    assert sum(p.numel() for p in model.trunk_parameters()) == sum(p.numel() for p in model.parameters()) - n_codec
    log = [json.loads(line) for line in (tmp_path / "m" / "train_log.jsonl").read_text().splitlines()]
    assert any("codec_loss" in row for row in log) and any("gen_loss" in row for row in log)


def test_latent_tokens_cover_the_same_pixels_as_patches():
    tok = WordTokenizer(WORDS, max_len=8)
    torch.manual_seed(0)
    model = TinyUMM(vocab=list(tok.vocab), colors=["red"], shapes=["circle"], textures=["solid"], max_text_len=8,
                    d_model=32, n_layers=1, n_heads=2, latent_channels=4, latent_width=8).eval()
    assert model.patch_dim == 4 * 2 * 2  # an 8×8-pixel token is a 2×2 patch of the 4-channel, 1/4-size latent
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        tokens = model.encode_images(x)
        y = model.decode_tokens(tokens)
    assert tokens.shape == (2, 64, 16) and y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    # Locality: changing pixels in token (row 0, col 0) only can change only nearby tokens (conv receptive field),
    # never a far corner one.
    x2 = x.clone()
    x2[:, :, :8, :8] = 1.0
    with torch.no_grad():
        t2 = model.encode_images(x2)
    assert not torch.allclose(t2[:, 0], tokens[:, 0]) and torch.allclose(t2[:, 63], tokens[:, 63])
    pixel = TinyUMM(vocab=list(tok.vocab), max_text_len=8, d_model=32, n_layers=1, n_heads=2, latent_channels=0)
    assert pixel.codec is None and torch.equal(pixel.encode_images(x), patchify(x, 8))
    assert torch.equal(pixel.decode_tokens(patchify(x, 8)), x.clamp(-1, 1))
    with pytest.raises(ValueError, match="multiple of 4"):
        TinyUMM(vocab=list(tok.vocab), patch_size=6, image_size=60, latent_channels=4)


def test_learning_rate_warms_up_then_decays_by_cosine_to_the_floor():
    from dataclasses import replace

    from srum_core.tinyumm.train import TrainRunConfig, learning_rate

    c = replace(TrainRunConfig(), lr=1e-3, warmup_steps=10, steps=110, lr_min_ratio=0.1)
    lrs = [learning_rate(c, s) for s in range(120)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)  # linear warm-up to the peak
    assert lrs[60] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # halfway through the cosine
    assert lrs[110] == pytest.approx(1e-4) and lrs[119] == pytest.approx(1e-4)  # floor at and after `steps`
    after = lrs[9:111]
    assert all(a >= b for a, b in zip(after, after[1:]))
    with pytest.raises(ValueError, match="lr_min_ratio"):
        replace(c, lr_min_ratio=1.5)


def test_size_labels_come_from_the_fourth_attribute_and_are_ignored_on_crops():
    ids = torch.zeros(1, 16, 16, dtype=torch.long)
    ids[0, 0:8, 0:8] = 1
    attrs = torch.full((1, 5, 4), IGNORE, dtype=torch.long)
    attrs[0, 1] = torch.tensor([0, 1, 0, 1])
    lab = patch_labels(ids, attrs, 8)
    assert lab["size"].tolist() == [[1, IGNORE, IGNORE, IGNORE]]
    assert "size" not in patch_labels(ids, attrs[..., :3], 8)  # three attributes: no size label, as before

    from srum_core.tinyumm.data import PoolConfig, WorldPool

    pool = WorldPool(PoolConfig(size=12, refresh_per_step=1, n_prompts=40), seed=0)
    gen = torch.Generator().manual_seed(0)
    full = pool.understanding_batch(16, 8, gen, crop_p=0.0)
    assert bool((full["size"] != IGNORE).any()) and set(full["size"].unique().tolist()) <= {IGNORE, 0, 1}
    assert torch.equal(full["size"] != IGNORE, full["color"] != IGNORE)  # every object patch has a size
    crops = pool.understanding_batch(16, 8, gen, crop_p=1.0)
    assert bool((crops["size"] == IGNORE).all()) and bool((crops["color"] != IGNORE).any())


def test_size_head_is_optional_and_older_configs_load_without_it(tmp_path):
    model, tok = tiny_model()
    ids, mask = tok.encode(["a red circle"])
    args = (ids, mask, torch.randn(1, 64, 192), torch.tensor([0.5]), torch.tensor([1]))
    with torch.no_grad():
        assert "size" not in model(*args) and model.size_head is None
    sized = TinyUMM(vocab=list(tok.vocab), colors=["red"], shapes=["circle"], textures=["solid"], max_text_len=8,
                    d_model=32, n_layers=2, n_heads=2, sizes=["small", "large"]).eval()
    with torch.no_grad():
        assert sized(*args)["size"].shape == (1, 64, 2)
    sized.save_pretrained(tmp_path)
    assert TinyUMM.from_pretrained(str(tmp_path)).config.sizes == ["small", "large"]


def test_bf16_autocast_step_matches_float32_closely():
    """The trunk trains under CPU bf16 autocast; attention stays float32 and the loss stays close to fp32's."""
    model, tok = tiny_model()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p, generator=torch.Generator().manual_seed(3)))
    ids, mask = tok.encode(["a red circle", "a blue square"])
    args = (ids, mask, torch.randn(2, 64, 192, generator=torch.Generator().manual_seed(4)), torch.tensor([0.5, 0.8]),
            torch.tensor([0, 0]))
    with torch.no_grad():
        ref = model(*args)["velocity"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(*args)["velocity"].float()
    assert low.shape == ref.shape and torch.isfinite(low).all()
    assert float((low - ref).abs().max()) < 0.05 * float(ref.abs().max())
    assert not torch.equal(low, ref)  # the matmuls really ran in bf16


def test_train_cli_passes_architecture_batch_device_and_pool_flags(tmp_path):
    from srum_core.tinyumm.train import main

    out = tmp_path / "m"
    rc = main(["--tiny", "--out", str(out), "--device", "cpu", "--gen-batch", "3", "--und-batch", "2",
               "--d-model", "24", "--n-layers", "1", "--timestep-shift", "2.0", "--pool-size", "10",
               "--codec-steps", "2", "--steps", "2"])
    assert rc == 0
    config = json.loads((out / "training_config.json").read_text())
    assert (config["device"], config["gen_batch"], config["und_batch"]) == ("cpu", 3, 2)
    assert (config["d_model"], config["n_layers"], config["timestep_shift"]) == (24, 1, 2.0)
    assert (config["pool"]["size"], config["codec_steps"], config["steps"]) == (10, 2, 2)
    model = TinyUMM.from_pretrained(out)
    assert (model.config.d_model, model.config.n_layers, model.config.flow_shift) == (24, 1, 2.0)
    with pytest.raises(SystemExit):  # refuses to overwrite weights without --force
        main(["--tiny", "--out", str(out)])
