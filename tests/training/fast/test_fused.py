"""The fused actor-critic and update (training/fast/fused_policy.py,
fused_update.py) against the plain path they must equal: forward values,
gradients, one whole batch of weights, within stated tolerances (float
rounding differs: other reduction orders, fused Adam); and the plain path
wherever the fused one does not reach."""

from __future__ import annotations

from dataclasses import fields, replace

import pytest
import torch

from esper.envs.spaces import BoxSpace, DiscreteSpace
from esper.training.fast.dispatch_count import DispatchCounter
from esper.training.fast.fused_policy import FUSED_MIN_ELEMENTS, placement, tanh_layer
from esper.training.fast.fused_update import (
    as_columns,
    fused_update,
    minibatch_gradients,
    update_views,
)
from esper.training.fast.layers import SIGMOID_TANH_MIN_ELEMENTS, SigmoidTanh
from esper.training.fast.optimizer import DeviceAdam, FlatAdam, optimizer
from esper.training.policy.actor_critic import ActorCritic
from esper.training.ppo import FlatBatch, UpdateSettings, minibatch_loss, ppo_update

SETTINGS = UpdateSettings(
    update_epochs=2, minibatch_size=64, clip_coef=0.2, clip_value_loss=True, ent_coef=0.01,
    vf_coef=0.5, max_grad_norm=0.5, normalize_advantages=True, target_kl=None,
)  # fmt: skip

# float32 values of a few ops each, reordered: a few ulps of the values' scale
FORWARD_TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}
GRADIENT_TOLERANCE = {"rtol": 1e-4, "atol": 1e-6}
# a whole batch: 8 Adam steps whose normalised updates amplify rounding differences
WEIGHT_TOLERANCE = {"rtol": 1e-3, "atol": 2e-5}


def _policy(seed: int = 0, obs_dim: int = 4, hidden=(64, 64), n_actions: int = 2, **kwargs):
    torch.manual_seed(seed)
    policy = ActorCritic(obs_dim, DiscreteSpace(n_actions), hidden, **kwargs)
    adam = optimizer(policy.parameters(), 2.5e-4, 1e-5, True, placement=placement(policy))
    return policy, adam


def _plain(policy: ActorCritic) -> tuple[ActorCritic, FlatAdam]:
    twin = policy.plain_twin()
    return twin, FlatAdam(twin.parameters(), 2.5e-4, 1e-5)


def _batch(policy: ActorCritic, n: int = 256, spread: float = 0.3, seed: int = 1) -> FlatBatch:
    """Stored steps whose old log-probabilities and values differ from the
    policy's by up to ``spread``, so some ratios and values are clipped."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, policy.obs_dim, generator=g)
    with torch.no_grad():
        action, log_prob, value, _ = policy.act(obs)
    jitter = (torch.rand(2, n, generator=g) - 0.5) * 2 * spread
    return FlatBatch(
        obs=obs, actions=action, log_probs=log_prob + jitter[0], values=value + jitter[1],
        advantages=torch.randn(n, generator=g), returns=value + torch.randn(n, generator=g),
    )  # fmt: skip


def test_the_fused_forward_acts_as_the_plain_policy() -> None:
    policy, _ = _policy()
    twin, _ = _plain(policy)
    obs = torch.randn(300, 4)
    noise = policy.sample_noise(300)
    with torch.no_grad():
        assert policy._fused_views(obs, None) is not None  # the fused path runs
        fused, plain = policy.act(obs, noise), twin.act(obs, noise)
    assert torch.equal(fused[0], plain[0])
    torch.testing.assert_close(fused[1], plain[1], **FORWARD_TOLERANCE)
    torch.testing.assert_close(fused[2], plain[2], **FORWARD_TOLERANCE)


def test_without_the_paired_layout_the_policy_acts_plainly() -> None:
    """A policy whose layers do not lie side by side (evaluation, a loaded policy)."""
    torch.manual_seed(0)
    policy = ActorCritic(4, DiscreteSpace(2), (64, 64))
    with torch.no_grad():
        assert policy._fused_views(torch.zeros(3, 4), None) is None
    FlatAdam(policy.parameters(), 1e-3)  # its own order: the critic after the actor
    with torch.no_grad():
        assert policy._fused_views(torch.zeros(3, 4), None) is None


@pytest.mark.parametrize("rows", [FUSED_MIN_ELEMENTS // 64 - 1, FUSED_MIN_ELEMENTS // 64, 1024])
def test_the_fused_tanh_layer_is_the_sigmoid_form_of_the_same_matmul_bit_for_bit(rows) -> None:
    """The 2x folded into ``baddbmm`` and ``2 s - 1`` as one ``add`` change no
    bit of ``SigmoidTanh``'s form (``2 sigmoid(2x) - 1`` as ``mul``, ``sigmoid_``,
    ``mul_``, ``sub_``); below the threshold it is ``tanh`` itself."""
    torch.manual_seed(0)
    x, weight_t, bias = torch.randn(2, rows, 64), torch.randn(2, 64, 64) / 8, torch.randn(2, 1, 64)
    z = torch.baddbmm(bias, x, weight_t)
    sigmoid_form = rows * 64 >= FUSED_MIN_ELEMENTS
    expected = z.mul(2).sigmoid_().mul_(2).sub_(1) if sigmoid_form else z.tanh()
    assert torch.equal(tanh_layer(bias, x, weight_t), expected)
    if rows * 64 >= SIGMOID_TANH_MIN_ELEMENTS:  # the plain layer's form, the same bits
        assert torch.equal(torch.stack([SigmoidTanh()(half) for half in z]), expected)


def test_the_default_rollout_s_fused_forward_takes_the_sigmoid_form() -> None:
    """From ``FUSED_MIN_ELEMENTS`` per network (the default rollout's 128 x 64),
    2 ops a layer; the plain policy keeps ``tanh`` there (its threshold is the
    plain layer's), and the two act alike (rounding: 3e-7)."""
    policy, _ = _policy()
    twin, _ = _plain(policy)
    threshold_rows = FUSED_MIN_ELEMENTS // 64
    for rows, sigmoid_form in ((threshold_rows - 1, False), (threshold_rows, True), (128, True)):
        counter = DispatchCounter()
        obs, noise = torch.randn(rows, 4), policy.sample_noise(rows)
        with torch.no_grad(), counter:
            fused = policy.act(obs, noise)
        assert (counter.ops["aten.sigmoid_.default"] == 2) is sigmoid_form, rows
        assert (counter.ops["aten.tanh_.default"] == 2) is not sigmoid_form, rows
        with torch.no_grad():
            plain = twin.act(obs, noise)
        assert torch.equal(fused[0], plain[0])
        torch.testing.assert_close(fused[2], plain[2], **FORWARD_TOLERANCE)


def test_the_fused_views_follow_parameters_that_move() -> None:
    """The views are cached by storage: new storage (a new optimiser's flat
    buffer) gives new views, and the forward reads the new parameters."""
    policy, _ = _policy()
    obs = torch.randn(8, 4)
    with torch.no_grad():
        first = policy._fused_views(obs, None)
        assert policy._fused_views(obs, None) is first
        optimizer(policy.parameters(), 1e-3, 1e-5, True, placement=placement(policy))
        moved = policy._fused_views(obs, None)
        assert moved is not None and moved is not first
        actor_w = policy.actor[0].weight
        assert moved.params.weights[0][0].data_ptr() == actor_w.data_ptr()


@pytest.mark.parametrize("clip_value_loss", [True, False])
@pytest.mark.parametrize(("obs_dim", "hidden", "n_actions"), [(4, (64, 64), 2), (6, (32,), 3)])
def test_hand_written_gradients_equal_autograd_s(clip_value_loss, obs_dim, hidden, n_actions):
    policy, adam = _policy(obs_dim=obs_dim, hidden=hidden, n_actions=n_actions)
    twin, twin_adam = _plain(policy)
    settings = replace(SETTINGS, clip_value_loss=clip_value_loss)
    batch = _batch(policy)
    views = update_views(policy, adam, batch)
    assert views is not None
    stats = minibatch_gradients(views, as_columns(batch), batch.actions.unsqueeze(1), settings)
    twin_adam.zero_grad()
    loss, plain_stats = minibatch_loss(twin, batch, settings)
    loss.backward()
    for fused_param, plain_param in zip(policy.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(fused_param.grad, plain_param.grad, **GRADIENT_TOLERANCE)
    names = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")
    assert plain_stats["clip_fraction"] > 0  # the clipped branches were taken
    expected = torch.stack([plain_stats[name] for name in names])
    signs = torch.tensor([-1, 0.5, -1, 1, 1])  # the columns' means to the statistics
    torch.testing.assert_close(stats * signs, expected, **FORWARD_TOLERANCE)


def test_a_whole_fused_update_takes_the_plain_update_s_steps() -> None:
    policy, adam, twin, twin_adam = _whole_update_on("cpu")
    assert adam.steps == twin_adam.steps == 16
    for fused_param, plain_param in zip(policy.parameters(), twin.parameters(), strict=True):
        assert not torch.equal(fused_param, plain_param.detach() * 0)  # trained, not zeroed
    padding = torch.ones_like(adam.flat_grad, dtype=torch.bool)
    padding[adam._unpadded] = False
    assert not adam.flat[padding].any() and not adam.flat_grad[padding].any()


def _falls_back(policy, adam, batch, settings=SETTINGS) -> None:
    """``fused_update`` is ``ppo_update`` to the bit for this case."""
    state = ([p.detach().clone() for p in policy.parameters()], adam.state_dict())
    torch.manual_seed(3)
    fused = fused_update(policy, adam, batch, settings)
    after = [p.detach().clone() for p in policy.parameters()]
    for param, saved in zip(policy.parameters(), state[0], strict=True):
        param.data.copy_(saved)
    adam.load_state_dict(state[1])
    torch.manual_seed(3)
    plain = ppo_update(policy, adam, batch, settings)
    assert all(torch.equal(fused[k], plain[k]) for k in plain)
    assert all(torch.equal(a, p) for a, p in zip(after, policy.parameters(), strict=True))


def test_what_the_fused_update_does_not_cover_runs_the_plain_update() -> None:
    torch.manual_seed(0)
    continuous = ActorCritic(3, BoxSpace((-1.0,), (1.0,)), (64, 64))
    cont_adam = FlatAdam(continuous.parameters(), 1e-3, placement=placement(continuous))
    obs = torch.randn(128, 3)
    with torch.no_grad():
        action, log_prob, value, _ = continuous.act(obs)
    cont_batch = FlatBatch(obs, action, log_prob, value, torch.randn(128), value)
    assert update_views(continuous, cont_adam, cont_batch) is None
    _falls_back(continuous, cont_adam, cont_batch)
    relu, relu_adam = _policy(activation="relu")
    assert update_views(relu, relu_adam, _batch(relu)) is None
    _falls_back(relu, relu_adam, _batch(relu))
    policy, adam = _policy()
    masked = replace(_batch(policy), action_masks=torch.ones(256, 2, dtype=torch.bool))
    assert update_views(policy, adam, masked) is None
    _falls_back(policy, adam, masked)


def test_large_minibatches_run_the_plain_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above ``FUSED_MAX_ROWS`` rows arithmetic, not dispatch, is the cost."""
    import esper.training.fast.fused_update as module

    monkeypatch.setattr(module, "FUSED_MAX_ROWS", SETTINGS.minibatch_size - 1)
    policy, adam = _policy()
    _falls_back(policy, adam, _batch(policy))


def test_the_device_optimizer_and_a_recurrent_policy_keep_the_plain_update() -> None:
    policy, _ = _policy()
    device_adam = DeviceAdam(policy.parameters(), 1e-3, placement=placement(policy))
    assert update_views(policy, device_adam, _batch(policy)) is None
    torch.manual_seed(0)
    gru = ActorCritic(4, DiscreteSpace(2), (64, 64), recurrent="gru")
    assert gru._fused is None and placement(gru) is None
    plain = ActorCritic(4, DiscreteSpace(2), (64, 64), speedups=False)
    assert plain._fused is None


def test_checkpoints_cross_the_paired_layout_both_ways() -> None:
    """The layout is the buffer's alone: parameters and Adam's moments load across it."""
    policy, adam = _policy()
    fused_update(policy, adam, _batch(policy), SETTINGS)
    twin, twin_adam = _plain(policy)
    twin_adam.load_state_dict(adam.state_dict())
    for key in ("exp_avg", "exp_avg_sq"):
        for a, b in zip(adam.state_dict()[key], twin_adam.state_dict()[key], strict=True):
            assert torch.equal(a, b)
    again, again_adam = _policy(seed=9)
    again.load_state_dict(twin.state_dict())
    again_adam.load_state_dict(twin_adam.state_dict())
    assert all(
        torch.equal(a, b) for a, b in zip(again.parameters(), policy.parameters(), strict=True)
    )
    assert again_adam.steps == adam.steps


def test_target_kl_stops_the_fused_update_at_the_plain_update_s_epoch() -> None:
    policy, adam = _policy()
    twin, twin_adam = _plain(policy)
    batch = _batch(policy, n=512, spread=0.5)
    settings = replace(SETTINGS, update_epochs=4, target_kl=1e-6)  # any KL stops it
    torch.manual_seed(5)
    fused = fused_update(policy, adam, batch, settings)
    torch.manual_seed(5)
    plain = ppo_update(twin, twin_adam, batch, settings)
    assert adam.steps == twin_adam.steps == 8  # one epoch of 8 minibatches
    torch.testing.assert_close(fused["approx_kl"], plain["approx_kl"], **GRADIENT_TOLERANCE)


def _whole_update_on(device: str):
    """One whole fused update on ``device``, held to the plain update there:
    ``(policy, its optimiser, the plain twin, its optimiser)`` after it."""
    cpu_policy, _ = _policy()
    batch = _batch(cpu_policy, n=512)
    moved = {f.name: getattr(batch, f.name) for f in fields(FlatBatch)}
    batch = FlatBatch(**{k: v if v is None else v.to(device) for k, v in moved.items()})
    policy = cpu_policy.to(device)
    adam = optimizer(policy.parameters(), 2.5e-4, 1e-5, True, placement=placement(policy))
    twin, twin_adam = _plain(policy)
    torch.manual_seed(5)
    fused = fused_update(policy, adam, batch, SETTINGS)
    torch.manual_seed(5)
    plain = ppo_update(twin, twin_adam, batch, SETTINGS)
    for name, value in plain.items():
        torch.testing.assert_close(fused[name], value, **GRADIENT_TOLERANCE)
    for fused_param, plain_param in zip(policy.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(fused_param, plain_param, **WEIGHT_TOLERANCE)
    return policy, adam, twin, twin_adam


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_the_fused_update_takes_the_plain_update_s_steps_on_cuda() -> None:
    """The eager CUDA default runs the fused update too (baddbmm, _fused_adam_)."""
    _whole_update_on("cuda")
