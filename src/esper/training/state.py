"""Everything a run carries from batch to batch, and its checkpoint round trip.

``TrainerState.save`` writes, and ``build_state`` restores, the complete
training state: policy, optimiser, normaliser, counters, every RNG stream,
the environments' own state and the observation the next batch starts from,
so the batch after a resume is the batch that would have come.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from esper.config.schema import FIELDS, PPOConfig
from esper.envs import BatchedEnv
from esper.envs.agents import make_rows
from esper.envs.check import check_contract
from esper.envs.registry import task_source
from esper.runs.directory import RunDir
from esper.runtime.errors import ConfigError
from esper.telemetry.metrics import TRAINER_METRIC_NAMES
from esper.training.checkpoint import (
    CheckpointError,
    describe_space,
    fits,
    forget_loaded,
    load_for_resume,
    save_checkpoint,
)
from esper.training.distributed.collectives import (
    Collectives,
    broadcast_parameters,
    sum_moments,
)
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.capture import batch_steps
from esper.training.fast.fused_policy import placement
from esper.training.fast.optimizer import Optimizer, optimizer, wants_device_optimizer
from esper.training.gae import batch_advantages
from esper.training.policy.actor_critic import ActorCritic, count_parameters, policy_for
from esper.training.policy.normalizer import RewardScaler, RunningMeanStd
from esper.training.ppo import ppo_update
from esper.training.rng import restore_rng_state, rng_state, seed_everything
from esper.training.rollout import collect_rollout

# Settings that shape the saved tensors, or that a resume cannot honour: a resume
# must keep them. ``seed``: the saved random streams continue, so a new seed would
# be recorded but not used. ``horizon``: every count of env steps is batches x
# n_envs x horizon, which a changed horizon would make wrong for the batches before.
RESUME_FIXED = (
    "task",
    "task_options",
    "n_envs",
    "horizon",
    "seed",
    "hidden_sizes",
    "activation",
    "encoder",
    "recurrent",
    "rnn_hidden",
    "normalize_obs",
    "normalize_reward",
    "critic",
    "agent_id",
)
# What each rank keeps for itself (the reward scaler holds per-env returns).
RANK_KEYS = ("reward_scaler", "env", "next_obs", "memory", "episodes", "rng")


@dataclass
class TrainerState:
    config: PPOConfig
    device: torch.device
    env: BatchedEnv
    policy: ActorCritic
    optimizer: Optimizer  # FlatAdam; PlainAdam with speedups off; DeviceAdam compiled or graphed
    obs_normalizer: RunningMeanStd | None
    reward_scaler: RewardScaler | None
    episodes: EpisodeTracker
    next_obs: torch.Tensor  # [n_envs, obs_dim] raw observation the next batch starts from
    # A recurrent policy's memory [n_envs, memory_size], which the next batch acts
    # from (updated in place); None for a feed-forward policy.
    memory: torch.Tensor | None = None
    batch: int = 0
    env_steps: int = 0
    run_id: str = ""
    # The batch's rollout and update: the plain functions, or their compiled or
    # graphed twins (training/capture.py), with the same arguments and results.
    collect: Callable[..., torch.Tensor] = collect_rollout
    advantages: Callable[..., tuple[torch.Tensor, torch.Tensor]] = batch_advantages
    update: Callable[..., dict[str, torch.Tensor]] = ppo_update
    group: Collectives = field(default_factory=Collectives)  # this rank in the job

    @property
    def local_envs(self) -> int:
        """The environments this rank steps (``n_envs / world_size``): the task's
        copies, each of whose agents is a row of the batch (``env.num_envs``)."""
        return self.env.copies

    @property
    def policy_params(self) -> int:
        return count_parameters(self.policy)

    def merge_normalizers(self) -> None:
        """Several ranks: make every running normaliser the job's (one
        all-reduce each, once a batch); nothing in one process."""
        if self.obs_normalizer is not None:
            self.obs_normalizer.merge_across()
        if self.reward_scaler is not None:
            self.reward_scaler.return_stats.merge_across()

    def value_of(self, obs: torch.Tensor) -> torch.Tensor:
        """Values of the policy's view of observations that follow the batch's last
        step (a recurrent policy's from the memory it carries)."""
        return self.policy.value(obs, self.memory)

    def policy_obs(self, raw_obs: torch.Tensor) -> torch.Tensor:
        if self.obs_normalizer is None:
            return raw_obs
        return self.obs_normalizer.normalize(raw_obs)

    def save(self, path: Path, **extra: Any) -> int:
        """Write the checkpoint on rank 0: the learner once, and every rank's
        environments, RNG streams and trackers (gathered here; rank 0's at the
        top level, as in a one-process run), plus ``extra`` entries (best.pt's
        evaluation). Other ranks return 0."""
        part = self.rank_part()
        parts = self.group.gather_to_main(_to_cpu(part) if self.group.active else part)
        if parts is None:
            return 0
        return save_checkpoint(
            path,
            {
                "run_id": self.run_id,
                "batch": self.batch,
                "env_steps": self.env_steps,
                "config": self.config.to_dict(),
                "task_source": task_source(self.config.task),  # finds a register()ed task
                "obs_dim": self.env.obs_dim,
                "action_space": describe_space(self.env.action_space),
                "policy": self.policy.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "obs_normalizer": _module_state(self.obs_normalizer),
                "world_size": self.group.world_size,
                **parts[0],
                "rank_states": parts[1:],
                **extra,
            },
        )

    def rank_part(self) -> dict[str, Any]:
        """What differs between ranks: the values of RANK_KEYS."""
        part = {
            "reward_scaler": _module_state(self.reward_scaler),
            "env": self.env.state_dict(),
            "next_obs": self.next_obs,
            "memory": self.memory,
            "episodes": self.episodes.state_dict(),
            "rng": rng_state(),
        }
        assert tuple(part) == RANK_KEYS
        return part


def _to_cpu(tree: Any) -> Any:
    if isinstance(tree, torch.Tensor):
        return tree.cpu()
    if isinstance(tree, dict):
        return {key: _to_cpu(value) for key, value in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(_to_cpu(value) for value in tree)
    return tree


def _module_state(module: torch.nn.Module | None) -> dict[str, Any] | None:
    return module.state_dict() if module is not None else None


def build_state(
    config: PPOConfig,
    device: torch.device,
    run_dir: RunDir,
    group: Collectives | None = None,
) -> TrainerState:
    """A fresh state for a new run, or the state saved after ``start_batch``.

    With several ranks this rank builds its share of the environments, seeded
    from (seed, rank), and takes rank 0's parameters.
    """
    group = group or Collectives()
    local_envs = group.shard(config.n_envs)
    _check_minibatches(config, local_envs, group.world_size)
    check_contract(config.task, device)  # a broken task: one line now, not in torch later
    seed = group.rank_seed(config.seed)
    seed_everything(seed)  # after the check: its envs leave training's numbers alone
    env = make_rows(config.task, local_envs, device, seed, config.to_dict(), config.task_options)
    rows = env.num_envs  # local_envs x the task's agents
    check_statistic_names(config.task, env)
    _check_image_scaling(config, env)
    policy = policy_for(config.to_dict(), env.spec)
    policy.to(device)
    lr, eps = config.learning_rate, config.adam_eps
    on_device = wants_device_optimizer(config)
    layout = placement(policy)  # twin layers side by side: training/fast/fused_policy.py
    adam = optimizer(policy.parameters(), lr, eps, config.speedups, on_device, layout)
    broadcast_parameters(adam.params, group)
    normalizer, scaler = _normalizers(config, env.obs_dim, rows, device, group)
    state = TrainerState(
        config=config,
        device=device,
        env=env,
        policy=policy,
        optimizer=adam,
        obs_normalizer=normalizer,
        reward_scaler=scaler,
        episodes=EpisodeTracker(local_envs, device, config.horizon, env.n_agents),
        next_obs=env.reset(seed=seed),
        memory=policy.initial_memory(rows),
        group=group,
    )
    state.collect, state.advantages, state.update = batch_steps(config, device, env, group)
    if config.start_batch > 0:
        _restore(state, run_dir)
    return state


def _check_minibatches(config: PPOConfig, local_envs: int, world_size: int) -> None:
    """Each rank's batch must split into ``n_minibatches`` (whole sequences when recurrent)."""
    if (local_envs * config.horizon) % config.n_minibatches:
        raise ConfigError(
            "n_minibatches",
            f"each of {world_size} ranks holds {local_envs * config.horizon} transitions "
            f"per batch, which {config.n_minibatches} minibatches do not divide",
        )
    if config.recurrent != "none" and local_envs % config.n_minibatches:
        raise ConfigError(
            "n_minibatches",
            f"a recurrent policy's minibatches are whole sequences: each of "
            f"{world_size} ranks steps {local_envs} environments, which "
            f"{config.n_minibatches} minibatches do not divide",
        )


def _check_image_scaling(config: PPOConfig, env: BatchedEnv) -> None:
    """Pixels have a fixed scale, which the policy applies (uint8 / 255); a running
    mean/std would also turn the uint8 buffer into floats four times its size."""
    if config.normalize_obs and env.spec.is_image:
        raise ConfigError(
            "normalize_obs",
            f"task {config.task} observes images {list(env.spec.obs_shape)}, which the "
            "policy scales itself; set normalize_obs = false",
        )


def _normalizers(
    config: PPOConfig, obs_dim: int, rows: int, device: torch.device, group: Collectives
) -> tuple[RunningMeanStd | None, RewardScaler | None]:
    """The observation normaliser and reward scaler (one return per row of the
    batch) the config asks for, their moments summed across ranks."""
    normalizer = RunningMeanStd((obs_dim,)).to(device) if config.normalize_obs else None
    scaler = RewardScaler(rows, config.gamma).to(device) if config.normalize_reward else None
    if normalizer is not None:
        normalizer.sum_across = sum_moments(group)
    if scaler is not None:
        scaler.return_stats.sum_across = sum_moments(group)
    return normalizer, scaler


def check_statistic_names(task: str, env: BatchedEnv) -> None:
    """Refuse a task statistic named like a trainer metric: the two would share
    a name in every consumer of BATCH_COMPLETED."""
    taken = sorted(s.name for s in env.statistics if s.name in TRAINER_METRIC_NAMES)
    if taken:
        raise ConfigError(
            "task",
            f"task {task} declares the statistic {taken[0]!r}, which is a trainer metric's "
            "name; rename it in the task's statistics",
        )


def _load_rank_states(state: TrainerState, run_dir: RunDir) -> list[dict[str, Any]]:
    """Rank 0: the checkpoint as one resume payload per rank (learner + its part)."""
    config, group = state.config, state.group
    path = run_dir.checkpoint_path(config.start_batch)
    saved = load_for_resume(run_dir.checkpoints(), config.start_batch)
    check_resume_compatible(saved, config, state.env, path)
    saved_world = saved.get("world_size", 1)
    if saved_world != group.world_size:
        raise ConfigError(
            "nproc",
            f"{path.name} was written by {saved_world} rank(s) and this run has "
            f"{group.world_size}; resume with {saved_world} rank(s)",
        )
    # .get: checkpoints from before a key existed (memory) hold none of it
    parts = [{key: saved.get(key) for key in RANK_KEYS}, *saved.get("rank_states", [])]
    learner = {key: value for key, value in saved.items() if key != "rank_states"}
    return [{**learner, **part} for part in parts]


def _restore(state: TrainerState, run_dir: RunDir) -> None:
    config = state.config
    saved = state.group.main_scatters(lambda: _load_rank_states(state, run_dir))
    forget_loaded()  # what this rank needs is in ``saved``
    state.policy.load_state_dict(saved["policy"])
    state.optimizer.load_state_dict(saved["optimizer"])
    if state.obs_normalizer is not None:
        state.obs_normalizer.load_state_dict(saved["obs_normalizer"])
    if state.reward_scaler is not None:
        state.reward_scaler.load_state_dict(saved["reward_scaler"])
    if state.env.restorable:
        state.env.load_state_dict(saved["env"])
        state.episodes.load_state_dict(saved["episodes"])
        state.next_obs = saved["next_obs"].to(state.device)
        if state.memory is not None:
            state.memory.copy_(saved["memory"])  # in place: a captured rollout reads it
    else:
        # gymnasium's environments cannot be saved: continue from fresh episodes,
        # seeded by the batch so a resume is still reproducible.
        state.next_obs = state.env.reset(seed=state.group.rank_seed(config.seed) + saved["batch"])
        if state.reward_scaler is not None:
            state.reward_scaler.discounted_return.zero_()
    state.batch = saved["batch"]
    state.env_steps = saved["env_steps"]
    state.run_id = saved["run_id"]
    restore_rng_state(saved["rng"])


def check_resume_compatible(
    saved: dict[str, Any], config: PPOConfig, env: BatchedEnv, path: Path
) -> None:
    """Refuse a resume whose settings cannot reuse the saved tensors."""
    check_fixed_settings(saved["config"], config, path)
    if not fits(saved, env.obs_dim, env.action_space):
        raise ConfigError("task", f"{path.name} has other observation or action shapes")
    if saved["batch"] != config.start_batch:
        raise CheckpointError(f"{path} holds batch {saved['batch']}, not {config.start_batch}")


def _default_of(key: str) -> Any:
    item = FIELDS[key]
    """A field's default, made afresh where it is a factory's (task_options: {})."""
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return item.default


def check_fixed_settings(saved_config: dict[str, Any], config: PPOConfig, path: Path) -> None:
    """Refuse a resume that changes a setting its checkpoint fixes (RESUME_FIXED),
    naming the setting: checked as soon as the checkpoint is read, before anything
    about the resume is said."""
    current = config.to_dict()
    for key in RESUME_FIXED:
        # A setting newer than the checkpoint had its default then (activation: tanh).
        made_with = saved_config.get(key, _default_of(key))
        if made_with != current[key]:
            raise ConfigError(
                key,
                f"{path.name} was made with {key}={made_with!r}, "
                f"not {current[key]!r}; resume with the checkpoint's value",
            )
