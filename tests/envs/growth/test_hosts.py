"""Batched host training against plain per-host modules, autograd and torch.optim.Adam."""

import torch
import torch.nn.functional as F
from growth_helpers import action, everyone, small_env

from esper.envs.growth import hosts
from esper.envs.growth.actions import GERMINATE
from esper.envs.growth.lifecycle import BLENDING, DORMANT, EMBARGOED, FOSSILIZED, HOLDING, TRAINING

SEED = ("a_w", "a_b", "b_w", "b_b")
# Per host, per slot: (stage, blueprint, alpha). Blueprints: 0 adapter, 1 block-8, 2 block-32.
SLOTS = [
    [(TRAINING, 2, 0.0), (BLENDING, 0, 0.5), (HOLDING, 1, 1.0)],
    [(FOSSILIZED, 1, 1.0), (DORMANT, 0, 0.0), (TRAINING, 0, 0.0)],
    [(DORMANT, 0, 0.0), (HOLDING, 2, 1.0), (EMBARGOED, 0, 0.0)],
]


def hosts_with_seeds():
    env = small_env(n=3, seed=4)
    generator = torch.Generator().manual_seed(0)
    seeds = hosts.host_layout(env.settings).view(env.weights, "seeds")
    for i, row in enumerate(SLOTS):
        for k, (stage, blueprint, alpha) in enumerate(row):
            env.stage[i, k], env.blueprint[i, k], env.alpha[i, k] = stage, blueprint, alpha
            live = TRAINING <= stage <= FOSSILIZED
            values = torch.randn(seeds.shape[2], generator=generator) * 0.3 * live
            seeds[i, k] = values
    weights = hosts.weights(env.weights, env.settings)
    weights.a_b.mul_(1 - env.blueprint_linear[env.blueprint][..., None])  # adapters: no biases
    weights.b_b.mul_(1 - env.blueprint_linear[env.blueprint][..., None])
    return env


def plain_epoch(env, i: int) -> torch.Tensor:
    """Host ``i`` trained alone: autograd, ``torch.optim.Adam``, Python branches by stage."""
    s = env.settings
    flat = env.weights[i : i + 1].clone()
    views = hosts.weights(flat, s)._asdict()
    w = {
        name: views[name][0].clone().requires_grad_() for name in ("w_in", "b_in", "w_out", "b_out")
    }
    # One leaf per slot and weight, as separate modules would hold them.
    slots = [{name: views[name][0, k].clone().requires_grad_() for name in SEED} for k in range(3)]
    trained = list(w.values())
    for k, (stage, blueprint, _) in enumerate(SLOTS[i]):
        if TRAINING <= stage <= FOSSILIZED:
            linear = bool(env.blueprint_linear[blueprint])
            trained += [slots[k][name] for name in (("a_w", "b_w") if linear else SEED)]
    adam = torch.optim.Adam(trained, lr=s.host_lr, betas=hosts.ADAM_BETAS, eps=hosts.ADAM_EPS)

    def seed(k: int, z: torch.Tensor) -> torch.Tensor:
        _, blueprint, _ = SLOTS[i][k]
        p = slots[k]
        u = z @ p["a_w"] + p["a_b"]
        h = u if bool(env.blueprint_linear[blueprint]) else torch.relu(u)
        return (h * env.blueprint_units[blueprint]) @ p["b_w"] + p["b_b"]

    for step in range(s.steps_per_epoch):
        rows = slice(step * s.batch_size, (step + 1) * s.batch_size)
        x, y = env.train_x[i, rows], env.train_y[i, rows]
        z = x @ w["w_in"] + w["b_in"]
        for k, (stage, _, alpha) in enumerate(SLOTS[i]):
            if stage == TRAINING:  # learns from the error, changes nothing
                out = seed(k, z.detach())
                z = z + (out - out.detach())
            elif alpha > 0:
                z = z + alpha * seed(k, z)
        loss = F.cross_entropy(z @ w["w_out"] + w["b_out"], y)
        adam.zero_grad()
        loss.backward()
        adam.step()
    plain = hosts.weights(flat, s)
    for name, tensor in w.items():
        getattr(plain, name)[0].copy_(tensor.detach())
    for k, slot in enumerate(slots):
        for name, tensor in slot.items():
            getattr(plain, name)[0, k].copy_(tensor.detach())
    return flat[0]


def test_batched_training_equals_each_host_trained_alone() -> None:
    env = hosts_with_seeds()
    expected = torch.stack([plain_epoch(env, i) for i in range(3)])
    env._train()
    torch.testing.assert_close(env.weights, expected, rtol=1e-4, atol=1e-5)


def test_a_seed_in_isolation_changes_neither_the_hosts_output_nor_its_learning() -> None:
    bare, seeded = small_env(n=2, seed=3), small_env(n=2, seed=3)
    bare.step(everyone(bare, 0))
    seeded.step(everyone(seeded, action(seeded, GERMINATE, slot=1, blueprint=2)))
    for _ in range(3):
        bare.step(everyone(bare, 0))
        seeded.step(everyone(seeded, 0))
    host = hosts.host_layout(bare.settings)
    for name in ("w_in", "b_in", "w_out", "b_out"):
        torch.testing.assert_close(host.view(seeded.weights, name), host.view(bare.weights, name))
    torch.testing.assert_close(seeded.history, bare.history)  # same losses and accuracies
    learned = host.view(seeded.weights, "seeds")[:, 1]
    assert not torch.allclose(learned, seeded.seed_fresh[:, 1])  # it learned from the error
    assert (seeded.stage[:, 1] == TRAINING).all()
    assert (seeded.contribution[:, 1] != 0).any()  # it learned something measurable
