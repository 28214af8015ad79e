"""Plans and images from TinyUMM: the think mode's planner and the seeded flow sampler.

A *plan* is the model's own layout of the scene, written by its understanding expert before it draws: a list of
objects, each ``(slot, colour, shape, size, texture)`` as class indices of the model's config, in the prompt's
order (copies of one kind by slot). As tokens it reads ``[<think>, object₁, …, objectₖ, </think>]``; as text,
``<think> slot 5 (row 1, col 1): large striped red circle; … </think>``.

Everything here is per-image deterministic: a plan depends only on (prompt, seed) and an image only on
(prompt, seed, steps, guidance, mode), never on what else is in the batch — the model always runs on chunks of
exactly ``chunk`` rows (padded with copies), and each image draws its randomness from its own CPU generators.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

#: The plan's random draws use a generator seeded with ``seed ^ PLAN_SEED_SALT`` (the noise uses ``seed``).
PLAN_SEED_SALT = 0x5EED

PlanObject = tuple[int, int, int, int, int]


def marker_rows(model) -> tuple[list[int], list[int]]:
    """The ``<think>`` and ``</think>`` plan rows: special slot indices, "none" attributes."""
    cfg = model.config
    none = [len(cfg.colors), len(cfg.shapes), len(cfg.sizes), len(cfg.textures)]
    return [model.n_slots + 1, *none], [model.n_slots, *none]


def plan_tensor(model, plans: Sequence[Sequence[PlanObject]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Complete plans → ``(plan (B, Q, 5) long, plan_mask (B, Q) bool)`` with ``<think>`` … ``</think>``."""
    q = int(model.config.max_plan_len)
    think, end = marker_rows(model)
    out = torch.zeros(len(plans), q, 5, dtype=torch.long)
    mask = torch.zeros(len(plans), q, dtype=torch.bool)
    for row, objects in enumerate(plans):
        rows = [think, *[list(o) for o in objects], end]
        if len(rows) > q:
            raise ValueError(f"a plan of {len(objects)} objects does not fit {q - 2} object tokens")
        out[row, : len(rows)] = torch.tensor(rows, dtype=torch.long)
        mask[row, : len(rows)] = True
    return out, mask


def layout_tensor(model, plans: Sequence[Sequence[PlanObject] | None]) -> torch.Tensor:
    """Plans → per-token layouts ``(B, N, 5)`` ``[state, colour, shape, size, texture]`` for the generation
    stream: state 0 = no plan (``None``), 1 = a slot the plan leaves empty, 2 = an object planned there. Tokens and
    slots coincide (one 16-pixel token per slot)."""
    if model.n_patches != model.n_slots:
        raise ValueError("layout conditioning needs one generation token per slot")
    cfg = model.config
    none = [len(cfg.colors), len(cfg.shapes), len(cfg.sizes), len(cfg.textures)]
    out = torch.zeros(len(plans), model.n_patches, 5, dtype=torch.long)
    out[..., 1:] = torch.tensor(none)
    for row, plan in enumerate(plans):
        if plan is None:
            continue
        out[row, :, 0] = 1
        for slot, c, s, z, t in plan:
            out[row, slot] = torch.tensor([2, c, s, z, t])
    return out


def plan_words(model, obj: PlanObject) -> str:
    """``"large striped red circle"`` for one plan object (solid is left unsaid)."""
    cfg = model.config
    slot, c, s, z, t = obj
    texture = cfg.textures[t]
    words = [cfg.sizes[z]] + ([texture] if texture != "solid" else []) + [cfg.colors[c], cfg.shapes[s]]
    return " ".join(words)


def plan_text(model, objects: Sequence[PlanObject]) -> str:
    """The plan as the think text shown to users and recorded under ``plan``."""
    g = int(model.config.grid_size)
    items = [f"slot {o[0]} (row {o[0] // g}, col {o[0] % g}): {plan_words(model, o)}" for o in objects]
    return "<think> " + "; ".join(items) + " </think>"


def plan_scene(model, objects: Sequence[PlanObject], size: int | None = None):
    """The world :class:`~srum_core.world.spec.Scene` a plan describes (what think mode means to draw)."""
    from ..world.render import scene_from_slots

    cfg = model.config
    return scene_from_slots(
        [(o[0], cfg.colors[o[1]], cfg.shapes[o[2]], cfg.sizes[o[3]], cfg.textures[o[4]]) for o in objects],
        size=size or int(cfg.image_size),
    )


def _pad(items: list, chunk: int) -> list:
    return items + [items[-1]] * (chunk - len(items))


@torch.no_grad()
def sample_plans(
    model, tokenizer, prompts: Sequence[str], seeds: Sequence[int], chunk: int = 8
) -> list[list[PlanObject]]:
    """One plan per (prompt, seed), written object by object by the planner heads.

    Each field is drawn from its softmax (temperature 1) with the image's own generator, so layouts vary from
    seed to seed as the world's do. Two rules of the plan *format* are enforced while decoding: a plan holds at
    least one object, and no slot twice; the number of objects and every attribute are the model's choice.
    """
    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
    device = next(model.parameters()).device
    max_objects = int(model.config.max_plan_len) - 2
    think, end = marker_rows(model)
    out: list[list[PlanObject]] = []
    for start in range(0, len(prompts), chunk):
        real = min(chunk, len(prompts) - start)
        texts = _pad(list(prompts[start : start + chunk]), chunk)
        gens = [torch.Generator().manual_seed(int(s) ^ PLAN_SEED_SALT) for s in _pad(list(seeds[start : start + chunk]), chunk)]
        ids, mask = tokenizer.encode(texts)
        ids, mask = ids.to(device), mask.to(device)
        plans: list[list[PlanObject]] = [[] for _ in range(chunk)]
        done = [False] * chunk
        for step in range(max_objects + 1):
            q = step + 1
            # Finished rows are padded with </think> so every row has q tokens; their outputs are not read.
            rows = [[think, *[list(o) for o in p], *([end] * (q - 1 - len(p)))] for p in plans]
            plan = torch.tensor(rows, dtype=torch.long, device=device)  # every row has q tokens
            plan_mask = torch.ones(chunk, q, dtype=torch.bool, device=device)
            logits = model.plan_logits(model.encode_text(ids, mask, plan, plan_mask))
            last = {k: v[:, -1].float().cpu() for k, v in logits.items()}
            for row in range(chunk):
                if done[row]:
                    continue
                slot_logits = last["slot"][row].clone()
                for o in plans[row]:
                    slot_logits[o[0]] = float("-inf")
                if step == 0:
                    slot_logits[model.n_slots] = float("-inf")  # at least one object
                if step == max_objects:
                    done[row] = True
                    continue
                slot = int(torch.multinomial(torch.softmax(slot_logits, -1), 1, generator=gens[row]))
                if slot == model.n_slots:
                    done[row] = True
                    continue
                fields = [slot]
                for key in ("color", "shape", "size", "texture"):
                    fields.append(int(torch.multinomial(torch.softmax(last[key][row], -1), 1, generator=gens[row])))
                plans[row].append(tuple(fields))
            if all(done):
                break
        out += plans[:real]
    return out


@torch.no_grad()
def sample_patches(
    model,
    tokenizer,
    prompts: Sequence[str],
    seeds: Sequence[int],
    steps: int,
    guidance: float,
    plans: Sequence[Sequence[PlanObject]] | None = None,
    chunk: int = 8,
    callback: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Euler sampling of the rectified flow with classifier-free guidance; returns ``(B, N, P)`` clean patches.

    Plain mode (``plans`` None) conditions on the prompt; think mode on the prompt and its plan. The null
    condition (CFG) is the empty prompt without a plan. The sigma schedule is shifted by the model's
    ``flow_shift``. The text prefix is encoded once per chunk (text never attends to the image), so each Euler
    step runs only the generation stream. ``callback(done, total)`` after each step.
    """
    from diffusers import FlowMatchEulerDiscreteScheduler

    if len(prompts) != len(seeds):
        raise ValueError(f"got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt")
    if plans is not None and len(plans) != len(prompts):
        raise ValueError(f"got {len(plans)} plans for {len(prompts)} prompts")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    n, p = model.n_patches, model.patch_dim
    use_cfg = guidance != 1.0
    results = []
    n_chunks = (len(prompts) + chunk - 1) // chunk
    for c in range(n_chunks):
        idx = _pad(list(range(c * chunk, min((c + 1) * chunk, len(prompts)))), chunk)
        real = min(chunk, len(prompts) - c * chunk)
        noise = torch.stack([torch.randn(n, p, generator=torch.Generator().manual_seed(int(seeds[i]))) for i in idx])
        x = noise.to(device=device, dtype=torch.float32)
        ids, mask = tokenizer.encode([prompts[i] for i in idx])
        ids, mask = ids.to(device), mask.to(device)
        layout = None
        if plans is not None:
            plan, plan_mask = plan_tensor(model, [plans[i] for i in idx])
            text = model.encode_text(ids, mask, plan.to(device), plan_mask.to(device))
            layout = layout_tensor(model, [plans[i] for i in idx]).to(device)
        else:
            text = model.encode_text(ids, mask)
        if use_cfg:
            null_ids, null_mask = tokenizer.encode([""] * chunk)
            null = model.encode_text(null_ids.to(device), null_mask.to(device))
            text = _concat_text(text, null)
            if layout is not None:
                layout = torch.cat([layout, layout_tensor(model, [None] * chunk).to(device)])
        scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=float(model.config.flow_shift))
        scheduler.set_timesteps(steps, device=device)
        for i, ts in enumerate(scheduler.timesteps):
            sigma = scheduler.sigmas[i].expand(chunk * (2 if use_cfg else 1)).to(device)
            inp = torch.cat([x, x]) if use_cfg else x
            v = model.velocity(text, inp.to(dtype), sigma.to(dtype), layout).float()
            if use_cfg:
                v = v[chunk:] + guidance * (v[:chunk] - v[chunk:])
            x = scheduler.step(v, ts, x).prev_sample
            if callback is not None:
                callback(c * steps + i + 1, n_chunks * steps)
        results.append(x[:real].cpu())
    return torch.cat(results)


def _concat_text(a, b):
    """Stack two text prefixes along the batch, padding the shorter key axis (masked out)."""
    from .model import TextStates

    la, lb = a.keys.shape[1], b.keys.shape[1]
    length = max(la, lb)

    def pad(t: torch.Tensor, extra: int, dim: int) -> torch.Tensor:
        if extra == 0:
            return t
        shape = list(t.shape)
        shape[dim] = extra
        return torch.cat([t, t.new_zeros(shape)], dim=dim)

    kv = [(torch.cat([pad(ka, length - la, 2), pad(kb, length - lb, 2)]),
           torch.cat([pad(va, length - la, 2), pad(vb, length - lb, 2)])) for (ka, va), (kb, vb) in zip(a.kv, b.kv)]
    keys = torch.cat([pad(a.keys, length - la, 1), pad(b.keys, length - lb, 1)])
    hidden = torch.cat([pad(a.hidden, length - la, 1), pad(b.hidden, length - lb, 1)])
    return TextStates(kv=kv, hidden=hidden, keys=keys, n_prompt=min(a.n_prompt, b.n_prompt))
