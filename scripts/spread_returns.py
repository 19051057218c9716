"""Reference returns of simple_spread under two definitions, for scripted policies.

The port (``simple-spread``, mpe2's rules) and the MPE copy the MAPPO paper
trained on (marlbenchmark/on-policy) differ in three ways that move the return
(docs/simple-spread.md): on-policy integrates velocity before position (mpe2
the other way round), draws landmarks in [-0.8, 0.8]² (mpe2 [-1, 1]²), and pays
every agent the sum over agents of ``-Σ min distance - collisions``, where an
agent always collides with itself. This script plays the same policies in both
and prints, per episode of 25 steps:

- ``port team``: Σ over agents and steps of the port's rewards (local_ratio 0.5);
- ``paper metric``: what on-policy logs as ``average_episode_rewards``
  (``mean(rewards) * 25``: one agent's shared reward summed over the episode),
  computed from the same episode with on-policy's reward, which is
  ``2 * port team - 75`` exactly, whatever the dynamics.

Policies: uniform random actions; and ``assign``, a scripted one that sends
each agent to its landmark of the best assignment (fixed at the start) and
picks, each step, the action whose predicted position three steps on is
closest to it. Not a learned policy: a yardstick for what "good" looks like.

    uv run python scripts/spread_returns.py --envs 4096
"""

from __future__ import annotations

import argparse
import itertools

import torch

from esper.envs.simple_spread import (
    DAMPING,
    DT,
    LANDMARKS,
    MAX_CYCLES,
    N_AGENTS,
    SimpleSpread,
)

PERMUTATIONS = torch.tensor(list(itertools.permutations(range(N_AGENTS))))  # [6, 3]


def assignment(pos: torch.Tensor, landmarks: torch.Tensor) -> torch.Tensor:
    """``[n, N_AGENTS, 2]``: each agent's landmark under the assignment of least total distance."""
    dist = (pos.unsqueeze(2) - landmarks.unsqueeze(1)).norm(dim=-1)  # [n, agent, landmark]
    agents = torch.arange(N_AGENTS)
    totals = dist[:, agents, PERMUTATIONS].sum(-1)  # [n, permutation]
    best = PERMUTATIONS[totals.argmin(1)]  # [n, agent] -> landmark
    return torch.gather(landmarks, 1, best.unsqueeze(-1).expand(-1, -1, 2))


def assign_policy(env: SimpleSpread, state: torch.Tensor, targets: torch.Tensor, classic: bool):
    """The action whose predicted position (this step's force, then coasting) three
    steps on is nearest the agent's target."""
    pos, vel, _ = env.unpack(state)
    best, best_dist = None, None
    for action in range(5):
        p, v = pos.clone(), vel.clone()
        for k in range(3):
            force = env._forces[action] if k == 0 else 0.0
            if classic:
                v = v * (1 - DAMPING) + force * DT
                p = p + v * DT
            else:
                p = p + v * DT
                v = v * (1 - DAMPING) + force * DT
        dist = (p - targets).norm(dim=-1)
        if best is None:
            best, best_dist = torch.zeros_like(dist, dtype=torch.long), dist
        else:
            closer = dist < best_dist
            best = torch.where(closer, action, best)
            best_dist = torch.where(closer, dist, best_dist)
    return best


def episode(n: int, classic: bool, policy: str, seed: int) -> tuple[float, float]:
    """Mean over ``n`` episodes of (port team return, paper metric)."""
    env = SimpleSpread(n, seed=seed, dtype=torch.float64)
    env.reset()
    if classic:  # on-policy's landmarks: 0.8 * uniform(-1, 1)
        env.state[:, LANDMARKS] *= 0.8
    targets = assignment(*[part.clone() for part in env.unpack(env.state)[::2]])
    generator = torch.Generator().manual_seed(seed)
    team = torch.zeros(n, dtype=torch.float64)
    for _ in range(MAX_CYCLES):
        if policy == "random":
            actions = torch.randint(0, 5, (n, N_AGENTS), generator=generator)
        else:
            actions = assign_policy(env, env.state, targets, classic)
        state = env.state.clone()
        pos, vel, landmarks = env.unpack(state)
        force = env._forces[actions] + env.contact_forces(pos)
        if classic:
            vel = vel * (1 - DAMPING) + force * DT
            pos = pos + vel * DT
        else:
            pos, vel = pos + vel * DT, vel * (1 - DAMPING) + force * DT
        shared = -(pos.unsqueeze(1) - landmarks.unsqueeze(2)).norm(dim=-1).amin(2).sum(1)
        own = -env.collisions(pos).to(torch.float64)
        team += (0.5 * shared.unsqueeze(1) + 0.5 * own).sum(1)
        env.state[:, :12] = torch.cat((pos.flatten(1), vel.flatten(1)), 1)
    return float(team.mean()), float(2 * team.mean() - N_AGENTS * MAX_CYCLES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, default=4096)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"{'dynamics':<34} {'policy':<7} {'port team':>10} {'paper metric':>13}")
    for classic in (False, True):
        name = "on-policy (classic, landmarks 0.8)" if classic else "mpe2 (this port)"
        for policy in ("random", "assign"):
            team, paper = episode(args.envs, classic, policy, args.seed)
            print(f"{name:<34} {policy:<7} {team:>10.1f} {paper:>13.1f}")


if __name__ == "__main__":
    main()
