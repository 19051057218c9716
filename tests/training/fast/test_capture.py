"""Compiled and graphed batches must change the speed, never the result.

What the CPU can prove: the rollout step and the minibatch step compile whole
(``fullgraph``: no graph break, no host read, no branch on a tensor's value),
the compiled steps equal the plain ones, ``DeviceAdam`` equals the flat Adam
and shares its checkpoints, and a batch keeps every tensor it carries in the
same storage (what a CUDA graph replay needs). Graphed against eager on a GPU
is in test_cuda.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from small_runs import one_epoch_settings

from esper.config.schema import PPOConfig
from esper.envs import make, task_names
from esper.envs.agents import make_rows
from esper.envs.cartpole import CartPole
from esper.runs.directory import RunDir
from esper.runtime.errors import UserError
from esper.training.distributed.collectives import Collectives
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.capture import (
    batch_steps,
    compile_step,
    compiled_minibatch_step,
    compiled_rollout_step,
)
from esper.training.fast.optimizer import DeviceAdam, FlatAdam
from esper.training.interrupt import StopRequest
from esper.training.loop import train_batch
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RewardScaler, RunningMeanStd
from esper.training.ppo import FlatBatch, minibatch_step
from esper.training.rollout import RolloutBuffer, collect_rollout, rollout_step
from esper.training.state import build_state

BUILT_IN = [name for name in task_names() if ":" not in name]
SETTINGS = one_epoch_settings(256)


@pytest.fixture(autouse=True)
def fresh_compiler():
    """Dynamo's cache is per function and process: each test starts from none,
    so the tasks compiled by earlier tests do not count against its recompile limit."""
    import torch._dynamo

    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class Rollout:
    """The pieces of one small rollout of ``task``, normalisers on."""

    def __init__(self, task: str, n_envs: int = 16, horizon: int = 8, seed: int = 0) -> None:
        torch.manual_seed(seed)
        self.env = make_rows(task, n_envs, "cpu", seed, {})  # several agents: a row each
        rows, spec = self.env.num_envs, self.env.spec
        self.policy = ActorCritic(spec.obs_dim, spec.action_space, (64, 64))
        self.buffer = RolloutBuffer.allocate(
            horizon, rows, spec.obs_dim, spec.action_space.shape, "cpu",
            mask_width=spec.mask_width,
        )  # fmt: skip
        self.episodes = EpisodeTracker(n_envs, torch.device("cpu"), horizon, self.env.n_agents)
        self.normalizer = RunningMeanStd((spec.obs_dim,))
        self.scaler = RewardScaler(rows, 0.99)
        self.obs = self.env.reset(seed=seed)

    def step_args(self, t: int = 0) -> tuple:
        noise = self.policy.sample_noise(self.buffer.obs.shape[1])
        fresh = self.env.draw_initial_states(1)[0]
        slot, row = self.buffer.step_views()[t], self.episodes.rows()[t]
        return (self.env, self.policy, slot, self.obs, noise, fresh, row, self.normalizer,
                self.episodes, self.scaler)  # fmt: skip

    def collect(self, step=None) -> torch.Tensor:
        torch.manual_seed(1)  # the policy's noise: the same draws for either step
        with torch.no_grad():
            return collect_rollout(
                self.env, self.policy, self.buffer, self.obs, self.normalizer, self.episodes,
                self.scaler, step=step,
            )  # fmt: skip


def minibatch(policy: ActorCritic, n: int = 256, seed: int = 0) -> FlatBatch:
    generator = torch.Generator().manual_seed(seed)
    obs_dim = policy.actor[0].in_features
    return FlatBatch(
        obs=torch.randn(n, obs_dim, generator=generator),
        actions=(
            torch.randint(0, policy.action_space.n, (n,), generator=generator)
            if policy.discrete
            else torch.randn(n, policy.action_space.dim, generator=generator)
        ),
        log_probs=-0.69 + 0.05 * torch.randn(n, generator=generator),
        values=torch.randn(n, generator=generator),
        advantages=torch.randn(n, generator=generator),
        returns=torch.randn(n, generator=generator),
    )


@pytest.mark.parametrize("task", BUILT_IN)
def test_the_rollout_step_compiles_whole(task: str) -> None:
    rollout = Rollout(task)
    with torch.no_grad():
        compile_step(rollout_step, backend="eager")(*rollout.step_args())


@pytest.mark.parametrize("task", ["cartpole", "pendulum"])
def test_the_minibatch_step_compiles_whole_with_backward_and_adam(task: str) -> None:
    policy = Rollout(task).policy
    adam = DeviceAdam(policy.parameters(), lr=2.5e-4, eps=1e-5)
    step = compile_step(minibatch_step, backend="eager", autograd=True)
    for seed in range(3):  # one graph serves every step: no recompilation per step
        step(policy, adam, minibatch(policy, seed=seed), SETTINGS)
    assert int(adam.step_count) == 3


def test_a_host_read_in_the_rollout_step_breaks_the_whole_graph(monkeypatch) -> None:
    """The deliberate failure: one ``.item()`` per step is caught, not tolerated."""
    plain = CartPole.dynamics

    def dynamics_with_a_host_read(self, state, actions):
        next_state, reward, terminated = plain(self, state, actions)
        if terminated.any().item():  # the mistake under test
            reward = reward * 1.0
        return next_state, reward, terminated

    monkeypatch.setattr(CartPole, "dynamics", dynamics_with_a_host_read)
    rollout = Rollout("cartpole")
    with torch.no_grad(), pytest.raises(Exception, match=r"(?i)item|graph break|data-dependent"):
        compile_step(rollout_step, backend="eager")(*rollout.step_args())


@pytest.mark.parametrize("task", ["pendulum", "cartpole", "probe-mask"])
def test_the_compiled_rollout_equals_the_plain_one(task: str) -> None:
    """Across auto-resets: pendulum's episodes are cut by the time limit at step
    4 of 8 (set so), cartpole's end by termination inside 24 steps, and the mask
    probe's episodes end every few steps with a fresh mask."""
    horizon = 24 if task == "cartpole" else 8
    plain, compiled = Rollout(task, horizon=horizon), Rollout(task, horizon=horizon)
    for rollout in (plain, compiled):
        if task == "pendulum":
            rollout.env.elapsed_steps.fill_(rollout.env.spec.max_episode_steps - 4)
    plain.obs, compiled.obs = plain.collect(), compiled.collect(compiled_rollout_step())
    ended = plain.buffer.truncated if task == "pendulum" else plain.buffer.terminated
    assert ended.any(), "no episode ended: auto-reset was not compared"
    torch.testing.assert_close(compiled.obs, plain.obs)
    for name in RolloutBuffer.__dataclass_fields__:
        torch.testing.assert_close(getattr(compiled.buffer, name), getattr(plain.buffer, name))
    if task == "probe-mask":  # the masks were stored, and every action they forbid avoided
        masks, actions = compiled.buffer.action_masks, compiled.buffer.actions
        assert masks is not None and not masks.all()
        assert masks.gather(2, actions.unsqueeze(2)).all()
    torch.testing.assert_close(compiled.normalizer.mean, plain.normalizer.mean)


def test_the_compiled_minibatch_step_equals_the_plain_one() -> None:
    policies = [Rollout("cartpole", seed=1).policy for _ in range(2)]
    adams = [DeviceAdam(p.parameters(), lr=1e-3, eps=1e-5) for p in policies]
    for seed in range(3):
        plain = minibatch_step(policies[0], adams[0], minibatch(policies[0], seed=seed), SETTINGS)
        fast = compiled_minibatch_step()(
            policies[1], adams[1], minibatch(policies[1], seed=seed), SETTINGS
        )
        for name in plain:
            torch.testing.assert_close(fast[name], plain[name], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(adams[1].flat, adams[0].flat, rtol=1e-5, atol=1e-6)


def test_device_adam_takes_the_flat_adam_s_steps_and_checkpoints() -> None:
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3)), torch.nn.Parameter(torch.randn(3))]
    twin = [torch.nn.Parameter(p.detach().clone()) for p in params]
    flat, device = FlatAdam(params, lr=3e-3, eps=1e-5), DeviceAdam(twin, lr=3e-3, eps=1e-5)
    for step in range(50):
        for adam in (flat, device):
            adam.set_learning_rate(3e-3 * (1 - step / 50))
            adam.zero_grad()
            adam.flat_grad.copy_(torch.sin(adam.flat * (step + 1)))
            adam.step()
    torch.testing.assert_close(device.flat, flat.flat, rtol=1e-6, atol=1e-7)
    saved = device.state_dict()
    assert saved["steps"] == flat.state_dict()["steps"] == 50
    restored = FlatAdam([torch.nn.Parameter(p.detach().clone()) for p in params], lr=1.0)
    restored.load_state_dict(saved)  # a run resumes across the switch, both ways
    back = DeviceAdam([torch.nn.Parameter(p.detach().clone()) for p in params], lr=1.0)
    back.load_state_dict(flat.state_dict())
    assert int(back.step_count) == 50 and float(back.lr) == pytest.approx(3e-3 / 50)


def test_cuda_graphs_on_without_cuda_is_refused_naming_the_setting() -> None:
    with pytest.raises(UserError) as refused:
        batch_steps(
            PPOConfig(cuda_graphs="on"), torch.device("cpu"), make("cartpole", 2), Collectives()
        )
    assert refused.value.setting == "cuda_graphs" and "CUDA" in refused.value.message


def test_cuda_graphs_accepts_only_auto_on_off() -> None:
    with pytest.raises(UserError, match="auto, on or off"):
        PPOConfig(cuda_graphs="yes")


def _carried(state) -> dict[str, torch.Tensor]:
    """Every tensor a batch reads and writes across batches."""
    tensors = {
        "env.state": state.env.state,
        "env.elapsed_steps": state.env.elapsed_steps,
        "episodes.running_return": state.episodes.running_return,
        "episodes.running_length": state.episodes.running_length,
        "adam.flat": state.optimizer.flat,
        "adam.flat_grad": state.optimizer.flat_grad,
        "adam.exp_avg": state.optimizer._exp_avg,
        "adam.exp_avg_sq": state.optimizer._exp_avg_sq,
        "adam.step_count": state.optimizer.step_count,
        "adam.lr": state.optimizer.lr,
    }
    if state.env.action_mask is not None:
        tensors["env.action_mask"] = state.env.action_mask
    for name, module in (("obs", state.obs_normalizer), ("reward", state.reward_scaler)):
        for key, tensor in module.state_dict().items():
            tensors[f"{name}.{key}"] = tensor
    tensors.update({f"policy.{k}": v for k, v in state.policy.state_dict().items()})
    return tensors


@pytest.mark.parametrize("task", ["pendulum", "probe-mask"])
def test_a_batch_keeps_what_it_carries_in_place(tmp_path: Path, task: str) -> None:
    """A CUDA graph replays fixed addresses: everything a batch carries to the
    next must be updated in place, never rebound to a new tensor (a masked
    task's mask too)."""
    config = PPOConfig(
        task=task, n_envs=8, horizon=16, n_minibatches=2, update_epochs=2,
        normalize_obs=True, normalize_reward=True, compile=True, device="cpu",
        run_dir=str(tmp_path),
    )  # fmt: skip
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    state.collect, state.advantages, state.update = batch_steps(
        PPOConfig(cuda_graphs="off"), torch.device("cpu"), state.env, Collectives()
    )  # the plain steps over DeviceAdam: what the CUDA graphs capture
    buffer = RolloutBuffer.allocate(
        16, 8, state.env.obs_dim, state.env.action_space.shape, "cpu",
        mask_width=state.env.spec.mask_width,
    )  # fmt: skip
    train_batch(config, state, buffer, StopRequest())
    before = {name: t.data_ptr() for name, t in _carried(state).items()}
    values = {name: t.clone() for name, t in _carried(state).items()}
    python_steps = state.optimizer.steps
    train_batch(config, state, buffer, StopRequest())
    after = _carried(state)
    assert {name: t.data_ptr() for name, t in after.items()} == before
    assert not torch.equal(after["env.state"], values["env.state"])  # it did move
    assert int(state.optimizer.step_count) == 2 * 2 * 2 and state.optimizer.steps == python_steps
