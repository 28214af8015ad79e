"""The optimiser loop on own samples: which parameters move, the two loss terms, warm-up, batching, cancel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from srum_core import adapters as A
from srum_core import training as T
from srum_core.config import TrainingConfig
from srum_core.protocol import Cancelled
from tests.fakes import GRID, FakeBackend, own_samples

N_TOKENS = GRID * GRID


def test_lora_training_moves_only_lora_parameters():
    backend = FakeBackend()
    samples = own_samples(backend)
    config = TrainingConfig(steps=3, lr=1e-2, batch_size=2, warmup_steps=0)
    A.attach_adapter(backend, config)
    before = {k: v.clone() for k, v in backend.net.state_dict().items()}
    result = T.train_on_samples(backend, samples, np.ones((4, N_TOKENS)), config)
    after = backend.net.state_dict()
    assert result.steps == 3 and len(result.metrics) == 3
    lora = [k for k in before if "lora_" in k]
    base = [k for k in before if "lora_" not in k]
    assert lora and base
    assert all(torch.equal(before[k], after[k]) for k in base)
    assert any(not torch.equal(before[k], after[k]) for k in lora)
    for row in result.metrics:
        assert row["loss"] == pytest.approx(row["reward_term"] + row["constraint_term"], rel=1e-5)
        assert row["grad_norm"] > 0


def test_zero_weights_and_zero_lambda_leave_the_adapter_untouched():
    # L = mean(0·e) + 0·mean(e) = 0: zero gradients, and AdamW moves nothing (m = 0).
    backend = FakeBackend()
    samples = own_samples(backend)
    config = TrainingConfig(steps=2, lr=1e-2, lam=0.0, batch_size=4)
    A.attach_adapter(backend, config)
    before = A.adapter_state(backend)
    result = T.train_on_samples(backend, samples, np.zeros((4, N_TOKENS)), config)
    assert all(row["loss"] == 0.0 and row["grad_norm"] == 0.0 for row in result.metrics)
    after = A.adapter_state(backend)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_constraint_term_is_lambda_times_mean_error():
    # With uniform weight w, reward = w·mean(e) and constraint = λ·mean(e): their ratio is w/λ at every step.
    backend = FakeBackend()
    samples = own_samples(backend)
    config = TrainingConfig(steps=2, lr=1e-3, lam=0.5, batch_size=4)
    A.attach_adapter(backend, config)
    result = T.train_on_samples(backend, samples, np.full((4, N_TOKENS), 0.25), config)
    for row in result.metrics:
        assert row["reward_term"] / row["constraint_term"] == pytest.approx(0.5, rel=1e-5)


def test_warmup_and_optimizer_settings():
    config = TrainingConfig(lr=1e-3, warmup_steps=4)
    assert [T.lr_at(s, config) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert T.lr_at(0, TrainingConfig(lr=1e-3, warmup_steps=0)) == 1e-3
    opt = T.make_optimizer([torch.nn.Parameter(torch.zeros(2))], TrainingConfig())
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.95) and group["eps"] == 1e-15 and group["weight_decay"] == 0.0


def test_batch_order_covers_every_sample_each_epoch():
    batches = T.batch_order(5, steps=5, batch_size=2, seed=0)
    assert all(len(b) == 2 for b in batches)
    flat = [i for b in batches for i in b]
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4]
    assert T.batch_order(5, 5, 2, seed=1) == T.batch_order(5, 5, 2, seed=1) != T.batch_order(5, 5, 2, seed=2)
    assert all(len(b) == 3 for b in T.batch_order(3, steps=2, batch_size=8, seed=0))


def test_training_knobs_reach_token_losses():
    seen = {}

    class Recording(FakeBackend):
        def token_losses(self, samples, generator=None, timestep_shift=1.0, cond_dropout=0.0):
            seen.update(timestep_shift=timestep_shift, cond_dropout=cond_dropout)
            return super().token_losses(samples, generator, timestep_shift, cond_dropout)

    backend = Recording()
    config = TrainingConfig(steps=1, timestep_shift=3.0, cond_dropout=0.2)
    A.attach_adapter(backend, config)
    T.train_on_samples(backend, own_samples(backend, 2), np.ones((2, N_TOKENS)), config)
    assert seen == {"timestep_shift": 3.0, "cond_dropout": 0.2}


def test_same_seed_gives_the_same_adapter():
    states = []
    for _ in range(2):
        backend = FakeBackend()
        config = TrainingConfig(steps=3, lr=1e-2, batch_size=2, seed=5)
        A.attach_adapter(backend, config)
        T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
        states.append(A.adapter_state(backend))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_cancel_stops_between_steps():
    import threading

    backend = FakeBackend()
    config = TrainingConfig(steps=5)
    A.attach_adapter(backend, config)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        T.train_on_samples(backend, own_samples(backend, 2), np.ones((2, N_TOKENS)), config, cancel=cancel)


def test_unset_timestep_shift_keeps_the_backends_own_default():
    seen = {}

    class Recording(FakeBackend):
        def token_losses(self, samples, generator=None, timestep_shift=2.5, cond_dropout=0.0):
            seen.update(timestep_shift=timestep_shift)
            return super().token_losses(samples, generator, timestep_shift, cond_dropout)

    backend = Recording()
    config = TrainingConfig(steps=1)
    assert config.timestep_shift is None
    A.attach_adapter(backend, config)
    T.train_on_samples(backend, own_samples(backend, 2), np.ones((2, N_TOKENS)), config)
    assert seen == {"timestep_shift": 2.5}


def test_cosine_schedule_and_validation_of_the_new_knobs():
    from srum_core.config import TrainingConfig
    from srum_core.training import lr_at

    cfg = TrainingConfig(steps=11, lr=1e-3, warmup_steps=1, lr_schedule="cosine", lr_min_ratio=0.1)
    assert lr_at(0, cfg) == pytest.approx(1e-3)  # the single warm-up step
    assert lr_at(1, cfg) == pytest.approx(1e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-4)  # the last step reaches the floor
    values = [lr_at(s, cfg) for s in range(1, 11)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert lr_at(5, TrainingConfig(steps=11, lr=1e-3, warmup_steps=1)) == pytest.approx(1e-3)  # constant stays flat
    with pytest.raises(ValueError, match="lr_schedule"):
        TrainingConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="ema_decay"):
        TrainingConfig(ema_decay=1.0)


def test_ema_of_the_trained_weights_lies_between_start_and_last_step():
    # EMA on: the round ends on the average of its steps, not the last step's weights.
    def run(ema):
        backend = FakeBackend()
        config = TrainingConfig(steps=4, lr=1e-2, batch_size=2, warmup_steps=0, ema_decay=ema, seed=3)
        A.attach_adapter(backend, config)
        start = [p.detach().clone() for p in A.trainable_parameters(backend)]
        T.train_on_samples(backend, own_samples(backend), np.ones((4, N_TOKENS)), config)
        return start, [p.detach().clone() for p in A.trainable_parameters(backend)]

    start, last = run(0.0)
    start_e, averaged = run(0.9)
    assert all(torch.equal(a, b) for a, b in zip(start, start_e))  # same seed, same start
    moved_last = sum(float((b - a).norm()) for a, b in zip(start, last))
    moved_ema = sum(float((b - a).norm()) for a, b in zip(start, averaged))
    assert 0 < moved_ema < moved_last
