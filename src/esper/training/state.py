"""Everything a run carries from batch to batch, and its checkpoint round trip.

``TrainerState.save`` writes, and ``build_state`` restores, the complete
training state: policy, optimiser, normaliser, counters, every RNG stream,
the environments' own state and the observation the next batch starts from,
so the batch after a resume is the batch that would have come.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from esper.config import ConfigError, PPOConfig
from esper.envs import BatchedEnv, make
from esper.envs.registry import task_source
from esper.run_dir import RunDir
from esper.training.checkpoint import (
    CheckpointError,
    describe_space,
    load_for_resume,
    save_checkpoint,
)
from esper.training.compilation import loss_function
from esper.training.episode_stats import EpisodeTracker
from esper.training.normalizer import RewardScaler, RunningMeanStd
from esper.training.policy import ActorCritic, count_parameters
from esper.training.ppo import FlatBatch, MinibatchLoss, UpdateSettings, minibatch_loss
from esper.training.rng import restore_rng_state, rng_state, seed_everything
from esper.training.rollout import RolloutBuffer
from esper.training.speedups import Optimizer, optimizer

# Settings that shape the saved tensors: a resume must keep them.
RESUME_FIXED = ("task", "n_envs", "hidden_sizes", "normalize_obs", "normalize_reward")


@dataclass
class TrainerState:
    config: PPOConfig
    device: torch.device
    env: BatchedEnv
    policy: ActorCritic
    optimizer: Optimizer  # FlatAdam, or PlainAdam with speedups off
    obs_normalizer: RunningMeanStd | None
    reward_scaler: RewardScaler | None
    episodes: EpisodeTracker
    next_obs: torch.Tensor  # [n_envs, obs_dim] raw observation the next batch starts from
    batch: int = 0
    env_steps: int = 0
    run_id: str = ""
    loss_fn: MinibatchLoss = minibatch_loss  # or its compiled twin (--compile)

    @property
    def policy_params(self) -> int:
        return count_parameters(self.policy)

    def policy_obs(self, raw_obs: torch.Tensor) -> torch.Tensor:
        if self.obs_normalizer is None:
            return raw_obs
        return self.obs_normalizer.normalize(raw_obs)

    def save(self, path: Path) -> int:
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
                "reward_scaler": _module_state(self.reward_scaler),
                "env": self.env.state_dict(),
                "next_obs": self.next_obs,
                "episodes": self.episodes.state_dict(),
                "rng": rng_state(),
            },
        )


def _module_state(module: torch.nn.Module | None) -> dict[str, Any] | None:
    return module.state_dict() if module is not None else None


def build_state(config: PPOConfig, device: torch.device, run_dir: RunDir) -> TrainerState:
    """A fresh state for a new run, or the state saved after ``start_batch``."""
    seed_everything(config.seed)
    env = make(config.task, config.n_envs, device, seed=config.seed)
    policy = ActorCritic(env.obs_dim, env.action_space, config.hidden_sizes, config.speedups)
    policy.to(device)
    adam = optimizer(policy.parameters(), config.learning_rate, config.adam_eps, config.speedups)
    normalizer = RunningMeanStd((env.obs_dim,)).to(device) if config.normalize_obs else None
    scaler = (
        RewardScaler(config.n_envs, config.gamma).to(device) if config.normalize_reward else None
    )
    state = TrainerState(
        config=config,
        device=device,
        env=env,
        policy=policy,
        optimizer=adam,
        obs_normalizer=normalizer,
        reward_scaler=scaler,
        episodes=EpisodeTracker(config.n_envs, device, config.horizon),
        next_obs=env.reset(seed=config.seed),
        loss_fn=loss_function(config.compile),
    )
    if config.start_batch > 0:
        _restore(state, run_dir)
    return state


def _restore(state: TrainerState, run_dir: RunDir) -> None:
    config = state.config
    path = run_dir.checkpoint_path(config.start_batch)
    saved = load_for_resume(run_dir.checkpoints(), config.start_batch)
    check_resume_compatible(saved, config, state.env, path)
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
    else:
        # gymnasium's environments cannot be saved: continue from fresh episodes,
        # seeded by the batch so a resume is still reproducible.
        state.next_obs = state.env.reset(seed=config.seed + saved["batch"])
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
    saved_config = saved["config"]
    current = config.to_dict()
    for key in RESUME_FIXED:
        if saved_config.get(key) != current[key]:
            raise ConfigError(
                key,
                f"{path.name} was made with {key}={saved_config.get(key)!r}, "
                f"not {current[key]!r}; resume with the checkpoint's value",
            )
    if saved["obs_dim"] != env.obs_dim or saved["action_space"] != describe_space(env.action_space):
        raise ConfigError("task", f"{path.name} has other observation or action shapes")
    if saved["batch"] != config.start_batch:
        raise CheckpointError(f"{path} holds batch {saved['batch']}, not {config.start_batch}")


def update_settings(config: PPOConfig) -> UpdateSettings:
    return UpdateSettings(
        update_epochs=config.update_epochs,
        minibatch_size=config.minibatch_size,
        clip_coef=config.clip_coef,
        clip_value_loss=config.clip_value_loss,
        ent_coef=config.ent_coef,
        vf_coef=config.vf_coef,
        max_grad_norm=config.max_grad_norm,
        normalize_advantages=config.normalize_advantages,
        target_kl=config.target_kl,
    )


def flatten_batch(
    buffer: RolloutBuffer, advantages: torch.Tensor, returns: torch.Tensor
) -> FlatBatch:
    """Views of the buffer as ``[horizon * n_envs, ...]`` (no copies)."""
    n = buffer.obs.shape[0] * buffer.obs.shape[1]
    return FlatBatch(
        obs=buffer.obs.reshape(n, -1),
        actions=buffer.actions.reshape(n, *buffer.actions.shape[2:]),
        log_probs=buffer.log_probs.reshape(n),
        values=buffer.values.reshape(n),
        advantages=advantages.reshape(n),
        returns=returns.reshape(n),
    )
