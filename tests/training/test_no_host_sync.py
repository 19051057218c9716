"""The rollout and update never read a tensor's value on the host.

Two checks: a dynamic one that makes every host read raise while one batch is
collected and learned from, and a static one over the hot-path modules, so a
sync in a branch the dynamic run did not take is caught too. The one
per-batch transfer in transfer.py and the optional per-epoch KL early stop
are marked ``# host-sync:`` with their reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import torch

import esper
from esper.config.layers import build_config
from esper.config.schema import PPOConfig
from esper.envs import make
from esper.runtime.host_sync import HostSyncError, host_reads_forbidden
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.optimizer import FlatAdam
from esper.training.gae import batch_advantages
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.normalizer import RunningMeanStd
from esper.training.ppo import flatten_batch, ppo_update, update_settings
from esper.training.rollout import RolloutBuffer, collect_rollout

PACKAGE = Path(esper.__file__).parent
HOT_PATHS = [
    "training/rollout.py",
    "training/ppo.py",
    "training/gae.py",
    "training/episode_stats.py",
    "training/policy/actor_critic.py",
    "training/policy/layers.py",
    "training/policy/normalizer.py",
    "training/policy/recurrent.py",
    "training/policy/encoders.py",
    "training/policy/distributions.py",
    "training/fast/optimizer.py",
    "training/fast/capture.py",
    "training/fast/layers.py",
    "training/fast/fused_policy.py",
    "training/fast/fused_update.py",
    *sorted(
        str(p.relative_to(PACKAGE))
        for p in (PACKAGE / "envs").glob("*.py")
        # Off the rollout: the checker, and video frames (read to the host by design).
        if p.name
        not in {
            "__init__.py",
            "gym_adapter.py",
            "pettingzoo_adapter.py",  # steps its copies on the host, as gym_adapter does
            "registry.py",
            "spaces.py",
            "rules.py",
            "render.py",
            "video.py",
        }
    ),
]
HOST_READS = {"item", "cpu", "tolist", "numpy"}
SCALAR_CASTS = {"float", "int", "bool"}


@pytest.mark.parametrize("normalize_obs", [False, True])
def test_one_batch_runs_without_host_reads(normalize_obs: bool) -> None:
    torch.manual_seed(0)
    config = PPOConfig(n_envs=16, horizon=32, n_minibatches=4, device="cpu")
    env = make("cartpole", config.n_envs, "cpu", seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, config.hidden_sizes)
    optimizer = FlatAdam(policy.parameters(), lr=1e-3, eps=1e-5)
    normalizer = RunningMeanStd((env.obs_dim,)) if normalize_obs else None
    episodes = EpisodeTracker(config.n_envs, torch.device("cpu"))
    buffer = RolloutBuffer.allocate(config.horizon, config.n_envs, env.obs_dim, (), "cpu")
    obs = env.reset(seed=0)
    with host_reads_forbidden():
        obs = collect_rollout(env, policy, buffer, obs, normalizer, episodes)
        advantages, returns = batch_advantages(
            buffer,
            normalizer.normalize(obs) if normalizer else obs,
            policy.value,
            0.99,
            0.95,
        )
        ppo_update(
            policy, optimizer, flatten_batch(buffer, advantages, returns), update_settings(config)
        )
    assert episodes.totals()["episodes_finished"].item() > 0  # episodes really ended


class ReachedTheTransfer(Exception):
    """Raised in place of the batch's one host transfer: all before it ran guarded."""


@pytest.mark.parametrize(
    "settings",
    [
        {"task": "cartpole-no-velocity", "recurrent": "gru", "rnn_hidden": 16},
        {"task": "minatar-breakout", "encoder": "cnn", "hidden_sizes": [32]},
        {"task": "cartpole", "lr_schedule": "adaptive", "target_kl": None},
        {"task": "probe-central", "critic": "central", "recurrent": "gru", "rnn_hidden": 16},
    ],
    ids=["recurrent", "cnn", "device-adam", "several-agents"],
)
def test_a_whole_batch_of_each_policy_kind_runs_without_host_reads(
    settings: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run's own batch (loop.train_batch: rollout, advantages, update) up to its
    one transfer, for a recurrent policy, a CNN, the device-resident Adam and
    agents as rows (with a central critic and the per-agent statistics)."""
    from esper.runs.directory import RunDir
    from esper.training import loop
    from esper.training.fast.optimizer import DeviceAdam
    from esper.training.interrupt import StopRequest
    from esper.training.state import build_state

    overrides = {"n_envs": 8, "horizon": 16, "n_minibatches": 2, "update_epochs": 2}
    config = build_config(
        None, {**overrides, **settings, "device": "cpu", "run_dir": str(tmp_path)}
    )
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    if "lr_schedule" in settings:
        assert isinstance(state.optimizer, DeviceAdam)
    env = state.env
    buffer = RolloutBuffer.allocate(
        config.horizon, env.num_envs, env.obs_dim, env.action_space.shape, "cpu",
        obs_dtype=env.spec.obs_dtype, memory_size=state.policy.memory_size,
    )  # fmt: skip

    def transfer(*args, **kwargs):
        raise ReachedTheTransfer

    monkeypatch.setattr(loop, "to_host", transfer)
    with host_reads_forbidden(), pytest.raises(ReachedTheTransfer):
        loop.train_batch(config, state, buffer, StopRequest())


def test_host_reads_are_caught() -> None:
    with host_reads_forbidden(), pytest.raises(HostSyncError):
        if torch.ones(1) > 0:  # a tensor-valued `if`
            pass


def static_host_reads(source: str) -> list[str]:
    """Lines that read a tensor on the host, unless marked ``# host-sync: why``."""
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        read = isinstance(func, ast.Attribute) and func.attr in HOST_READS
        cast = (
            isinstance(func, ast.Name)
            and func.id in SCALAR_CASTS
            and node.args
            and not isinstance(node.args[0], ast.Constant)
        )
        if (read or cast) and "# host-sync:" not in lines[node.lineno - 1]:
            found.append(f"{node.lineno}: {lines[node.lineno - 1].strip()}")
    return found


@pytest.mark.parametrize("module", HOT_PATHS)
def test_hot_path_module_has_no_host_reads(module: str) -> None:
    assert static_host_reads((PACKAGE / module).read_text()) == []


def test_the_per_batch_transfer_is_the_only_one_in_the_loop() -> None:
    assert static_host_reads((PACKAGE / "training/loop.py").read_text()) == []
    source = (PACKAGE / "training/transfer.py").read_text()
    marked = [line for line in source.splitlines() if "# host-sync:" in line]
    assert len(marked) == 1 and ".tolist()" in marked[0]
    assert static_host_reads(source) == []


def test_the_static_check_sees_a_sync() -> None:
    assert static_host_reads("x = loss.item()\ny = float(t)\nz = float(1)\n") == [
        "1: x = loss.item()",
        "2: y = float(t)",
    ]


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rollout_has_no_synchronisation() -> None:
    config = PPOConfig(n_envs=64, horizon=16, n_minibatches=4, device="cuda")
    device = torch.device("cuda")
    env = make("cartpole", config.n_envs, device, seed=0)
    policy = ActorCritic(env.obs_dim, env.action_space, config.hidden_sizes).to(device)
    episodes = EpisodeTracker(config.n_envs, device)
    buffer = RolloutBuffer.allocate(config.horizon, config.n_envs, env.obs_dim, (), device)
    obs = env.reset(seed=0)
    collect_rollout(env, policy, buffer, obs, None, episodes)  # warm-up
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        collect_rollout(env, policy, buffer, obs, None, episodes)
    finally:
        torch.cuda.set_sync_debug_mode(0)
