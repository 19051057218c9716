"""A CleanRL-style PPO loop, written here only as the benchmark's yardstick.

gymnasium's ``SyncVectorEnv`` steps numpy environments one by one; every step
moves observations numpy -> torch and actions torch -> numpy, as CleanRL's
``ppo.py`` does. Same network shape, same PPO arithmetic and hyperparameters as
esper, so the ratio between the two measures the batched-tensor design and
nothing else. Not used by esper itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical


@dataclass
class ReferenceSettings:
    n_envs: int
    horizon: int
    n_minibatches: int = 4
    update_epochs: int = 4
    learning_rate: float = 2.5e-4
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    seed: int = 1


def _layer(n_in: int, n_out: int, std: float) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.constant_(layer.bias, 0.0)
    return layer


class Agent(nn.Module):
    def __init__(self, obs_dim: int, n_actions: int) -> None:
        super().__init__()
        self.critic = nn.Sequential(
            _layer(obs_dim, 64, np.sqrt(2)), nn.Tanh(),
            _layer(64, 64, np.sqrt(2)), nn.Tanh(),
            _layer(64, 1, 1.0),
        )  # fmt: skip
        self.actor = nn.Sequential(
            _layer(obs_dim, 64, np.sqrt(2)), nn.Tanh(),
            _layer(64, 64, np.sqrt(2)), nn.Tanh(),
            _layer(64, n_actions, 0.01),
        )  # fmt: skip

    def value(self, x: torch.Tensor) -> torch.Tensor:
        return self.critic(x)

    def action_and_value(self, x: torch.Tensor, action: torch.Tensor | None = None):
        dist = Categorical(logits=self.actor(x))
        if action is None:
            action = dist.sample()
        return action, dist.log_prob(action), dist.entropy(), self.critic(x)


def run_reference(
    settings: ReferenceSettings, batches: int, gym_id: str = "CartPole-v1"
) -> list[dict]:
    """Train ``batches`` batches; per batch: seconds in rollout and update, returns."""
    torch.manual_seed(settings.seed)
    envs = gym.vector.SyncVectorEnv(
        [lambda: gym.wrappers.RecordEpisodeStatistics(gym.make(gym_id))] * settings.n_envs
    )
    obs_dim = envs.single_observation_space.shape[0]
    agent = Agent(obs_dim, int(envs.single_action_space.n))
    optimizer = torch.optim.Adam(agent.parameters(), lr=settings.learning_rate, eps=1e-5)
    t_len, n = settings.horizon, settings.n_envs
    obs_buf = torch.zeros(t_len, n, obs_dim)
    act_buf = torch.zeros(t_len, n)
    logp_buf = torch.zeros(t_len, n)
    rew_buf = torch.zeros(t_len, n)
    done_buf = torch.zeros(t_len, n)
    val_buf = torch.zeros(t_len, n)
    next_obs = torch.tensor(envs.reset(seed=settings.seed)[0], dtype=torch.float32)
    next_done = torch.zeros(n)
    batch_size = t_len * n
    minibatch = batch_size // settings.n_minibatches
    history = []
    for batch in range(batches):
        frac = 1.0 - batch / batches
        optimizer.param_groups[0]["lr"] = frac * settings.learning_rate
        started = time.perf_counter()
        returns_seen = []
        for t in range(t_len):
            obs_buf[t] = next_obs
            done_buf[t] = next_done
            with torch.no_grad():
                action, logp, _, value = agent.action_and_value(next_obs)
            val_buf[t] = value.flatten()
            act_buf[t] = action
            logp_buf[t] = logp
            obs_np, reward, term, trunc, info = envs.step(action.cpu().numpy())
            rew_buf[t] = torch.tensor(reward, dtype=torch.float32)
            next_obs = torch.tensor(obs_np, dtype=torch.float32)
            next_done = torch.tensor(np.logical_or(term, trunc), dtype=torch.float32)
            if "episode" in info:
                returns_seen.extend(info["episode"]["r"][info["_episode"]].tolist())
        rollout_done = time.perf_counter()
        with torch.no_grad():
            next_value = agent.value(next_obs).reshape(1, -1)
            advantages = torch.zeros_like(rew_buf)
            last = 0
            for t in reversed(range(t_len)):
                if t == t_len - 1:
                    not_done, next_v = 1.0 - next_done, next_value
                else:
                    not_done, next_v = 1.0 - done_buf[t + 1], val_buf[t + 1]
                delta = rew_buf[t] + settings.gamma * next_v * not_done - val_buf[t]
                last = delta + settings.gamma * settings.gae_lambda * not_done * last
                advantages[t] = last
            returns = advantages + val_buf
        b_obs = obs_buf.reshape(-1, obs_dim)
        b_act, b_logp = act_buf.reshape(-1), logp_buf.reshape(-1)
        b_adv, b_ret, b_val = advantages.reshape(-1), returns.reshape(-1), val_buf.reshape(-1)
        for _ in range(settings.update_epochs):
            order = np.random.permutation(batch_size)
            for start in range(0, batch_size, minibatch):
                idx = order[start : start + minibatch]
                _, new_logp, entropy, new_v = agent.action_and_value(b_obs[idx], b_act[idx].long())
                ratio = (new_logp - b_logp[idx]).exp()
                adv = b_adv[idx]
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg = torch.max(
                    -adv * ratio,
                    -adv * ratio.clamp(1 - settings.clip_coef, 1 + settings.clip_coef),
                ).mean()
                new_v = new_v.view(-1)
                clipped = b_val[idx] + (new_v - b_val[idx]).clamp(
                    -settings.clip_coef, settings.clip_coef
                )
                v_loss = (
                    0.5 * torch.max((new_v - b_ret[idx]) ** 2, (clipped - b_ret[idx]) ** 2).mean()
                )
                loss = pg - settings.ent_coef * entropy.mean() + settings.vf_coef * v_loss
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), settings.max_grad_norm)
                optimizer.step()
        finished = time.perf_counter()
        history.append(
            {
                "batch_seconds": finished - started,
                "rollout_seconds": rollout_done - started,
                "update_seconds": finished - rollout_done,
                "episode_return_mean": float(np.mean(returns_seen)) if returns_seen else None,
            }
        )
    envs.close()
    return history
