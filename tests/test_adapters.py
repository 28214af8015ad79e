"""The adapter lifecycle: attach (any rank), zero-bypass, state, snapshot/restore, save/load, reset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srum_core import adapters as A
from srum_core import training as T
from srum_core.config import TrainingConfig
from tests.fakes import GRID, FakeBackend, own_samples, pixels

N_TOKENS = GRID * GRID


def test_save_load_round_trip_and_atomic_write(tmp_path, monkeypatch):
    backend = FakeBackend()
    config = TrainingConfig(steps=3, lr=1e-2, batch_size=2, lora_rank=4)
    A.attach_adapter(backend, config)
    T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
    trained = pixels(backend)
    A.save_adapter(backend, tmp_path / "adapter", config)
    assert sorted(p.name for p in (tmp_path / "adapter").iterdir()) == [A.ADAPTER_CONFIG_FILE, A.LORA_WEIGHTS_FILE]
    meta = A.read_adapter_config(tmp_path / "adapter")
    assert meta["r"] == 4 and meta["srum_kind"] == "lora" and meta["backend"] == "fake"
    with pytest.raises(FileExistsError):
        A.save_adapter(backend, tmp_path / "adapter", config)

    fresh = FakeBackend()
    assert not np.array_equal(pixels(fresh), trained)
    loaded = A.load_adapter(fresh, tmp_path / "adapter")
    assert loaded.lora_rank == 4
    assert np.array_equal(pixels(fresh), trained)

    import safetensors.torch

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken)
    with pytest.raises(OSError):
        A.save_adapter(backend, tmp_path / "second", config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # nothing half-written


def test_reset_to_base_restores_base_outputs_for_lora_and_full():
    for full in (False, True):
        backend = FakeBackend()
        base = pixels(backend)
        config = TrainingConfig(steps=3, lr=5e-2, batch_size=2, full_finetune=full)
        A.attach_adapter(backend, config)
        T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
        assert not np.array_equal(pixels(backend), base)
        A.reset_to_base(backend)
        assert np.array_equal(pixels(backend), base)


def test_an_adapter_of_another_rank_replaces_the_attached_one():
    backend = FakeBackend()
    base = pixels(backend)
    config4 = TrainingConfig(steps=3, lr=5e-2, batch_size=2, lora_rank=4)
    A.attach_adapter(backend, config4)
    A.attach_adapter(backend, config4)  # idempotent: the same shape keeps its weights
    T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config4)
    trained4 = A.adapter_state(backend)
    A.attach_adapter(backend, config4)
    assert all(torch.equal(trained4[k], v) for k, v in A.adapter_state(backend).items())

    A.attach_adapter(backend, TrainingConfig(lora_rank=8))  # another visitor's rank: a fresh adapter
    assert A.adapter_shape(backend) == {"kind": "lora", "rank": 8, "alpha": 16.0}
    assert {tuple(v.shape) for k, v in A.adapter_state(backend).items() if "lora_A" in k} != {
        tuple(v.shape) for k, v in trained4.items() if "lora_A" in k
    }
    assert np.array_equal(pixels(backend), base)  # a fresh LoRA adds nothing, and the base weights are intact
    names = [name for name, _ in backend.net.named_modules()]
    assert not any("base_layer.base_layer" in name for name in names)  # replaced, not wrapped twice


def test_switching_between_lora_and_full_finetuning_restores_the_base_first():
    backend = FakeBackend()
    base = pixels(backend)
    config = TrainingConfig(steps=3, lr=5e-2, batch_size=2, lora_rank=4)
    A.attach_adapter(backend, config)
    T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
    assert not np.array_equal(pixels(backend), base)
    full = TrainingConfig(steps=3, lr=5e-2, batch_size=2, full_finetune=True)
    A.attach_adapter(backend, full)  # the LoRA layers come off: the base model again, then full fine-tuning
    assert A.adapter_shape(backend) == {"kind": "full"}
    assert np.array_equal(pixels(backend), base)
    assert not any("lora_" in name for name, _ in backend.net.named_parameters())
    T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), full)
    assert not np.array_equal(pixels(backend), base)
    A.attach_adapter(backend, TrainingConfig(lora_rank=2))  # and back: the saved base weights are loaded first
    assert A.adapter_shape(backend)["rank"] == 2
    assert np.array_equal(pixels(backend), base)


def test_a_snapshot_restores_its_rank_and_weights_whatever_was_attached_since():
    backend = FakeBackend()
    base = pixels(backend)
    empty = A.snapshot_adapter(backend)
    assert empty.shape is None and empty.state is None
    config = TrainingConfig(steps=3, lr=5e-2, batch_size=2, lora_rank=4)
    A.attach_adapter(backend, config)
    T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
    trained = pixels(backend)
    snapshot = A.snapshot_adapter(backend)
    assert snapshot.shape == {"kind": "lora", "rank": 4, "alpha": 8.0}

    A.attach_adapter(backend, TrainingConfig(lora_rank=2))
    A.restore_adapter(backend, snapshot)
    assert A.adapter_shape(backend)["rank"] == 4
    assert np.array_equal(pixels(backend), trained)
    A.restore_adapter(backend, empty)
    assert np.array_equal(pixels(backend), base)


def test_saved_adapters_of_different_ranks_load_into_one_backend(tmp_path):
    backend = FakeBackend()
    outputs = {}
    for rank in (4, 2):
        config = TrainingConfig(steps=3, lr=5e-2, batch_size=2, lora_rank=rank, seed=rank)
        A.attach_adapter(backend, config)
        A.init_adapter(backend, config.seed)
        T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
        outputs[rank] = pixels(backend)
        A.save_adapter(backend, tmp_path / f"r{rank}", config)
    assert not np.array_equal(outputs[4], outputs[2])
    for rank in (4, 2, 4):
        assert A.load_adapter(backend, tmp_path / f"r{rank}").lora_rank == rank
        assert np.array_equal(pixels(backend), outputs[rank])


def test_zero_adapter_is_bypassed_bit_exactly_and_only_while_zero():
    from peft.tuners.lora import LoraLayer

    backend = FakeBackend()
    with A.zero_adapter_bypassed(backend) as bypassed:
        assert not bypassed  # nothing attached
    config = TrainingConfig(steps=2, lr=5e-2, batch_size=2, warmup_steps=0)
    A.attach_adapter(backend, config)
    layers = [m for m in backend.net.modules() if isinstance(m, LoraLayer)]
    grads = [p.requires_grad for p in backend.net.parameters()]
    through_zero_lora = pixels(backend)
    with A.zero_adapter_bypassed(backend) as bypassed:
        assert bypassed and all(m.disable_adapters for m in layers)
        assert np.array_equal(pixels(backend), through_zero_lora)
        with A.zero_adapter_bypassed(backend) as inner:  # nested (a round's evaluation): the outer one restores
            assert inner
        assert all(m.disable_adapters for m in layers)
    assert not any(m.disable_adapters for m in layers)
    assert [p.requires_grad for p in backend.net.parameters()] == grads
    T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
    trained = pixels(backend)
    assert not np.array_equal(trained, through_zero_lora)
    with A.zero_adapter_bypassed(backend) as bypassed:
        assert not bypassed  # a trained adapter is never switched off
        assert np.array_equal(pixels(backend), trained)


def test_full_finetune_is_never_bypassed():
    backend = FakeBackend()
    A.attach_adapter(backend, TrainingConfig(full_finetune=True))
    with A.zero_adapter_bypassed(backend) as bypassed:
        assert not bypassed
