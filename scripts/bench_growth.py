"""What a grow-mlp batch costs on this machine, and where the time goes.

    uv run python scripts/bench_growth.py --envs 1024

Prints, for one batch of ``--envs`` hosts x ``max_epochs`` steps (after one
warm-up batch, unless ``--no-warm``): env steps per second of the whole batch, its rollout and
update seconds, and within the rollout the seconds of the host training
(``env.step`` alone, same steps) and of the policy (``policy.act`` alone); then
the ops one batch dispatches (torch's dispatcher, as
tests/training/distributed/test_launches.py counts CartPole's) at ``--count-envs``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from esper.config.layers import build_config
from esper.runs.directory import RunDir
from esper.training.fast.dispatch_count import DispatchCounter
from esper.training.interrupt import StopRequest
from esper.training.loop import train_batch
from esper.training.rollout import RolloutBuffer
from esper.training.state import build_state


def trainer(envs: int, folder: str, warm: bool = True):
    config = build_config(
        None, {"task": "grow-mlp", "n_envs": envs, "device": "cpu", "run_dir": folder}
    )
    state = build_state(config, torch.device("cpu"), RunDir(Path(folder)))
    buffer = RolloutBuffer.allocate(
        config.horizon, config.n_envs, state.env.obs_dim, state.env.action_space.shape, "cpu",
        mask_width=state.env.action_space.mask_width,
    )  # fmt: skip
    if warm:  # lazy initialisation out of the counted batch
        train_batch(config, state, buffer, StopRequest())
    return config, state, buffer


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--envs", type=int, default=1024)
    parser.add_argument("--count-envs", type=int, default=32)
    parser.add_argument(
        "--no-warm", dest="warm", action="store_false", help="time the first batch (cheaper)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config, state, buffer = trainer(args.envs, folder, warm=args.warm)
        fields, _ = train_batch(config, state, buffer, StopRequest())
        print(
            f"{args.envs} hosts x {config.horizon} steps: {fields['sps']:.0f} env steps/s, "
            f"batch {fields['batch_seconds']:.1f} s = rollout {fields['rollout_seconds']:.1f} s "
            f"+ update {fields['update_seconds']:.1f} s"
        )
        env, policy = state.env, state.policy
        fresh = env.draw_initial_states(config.horizon)
        obs = env.reset()
        actions = torch.zeros(env.num_envs, dtype=torch.int64)
        start = time.perf_counter()
        for t in range(config.horizon):
            env.step(actions, fresh[t])
        hosts = time.perf_counter() - start
        noise = policy.sample_noise(config.horizon, env.num_envs)
        start = time.perf_counter()
        with torch.no_grad():
            for t in range(config.horizon):
                policy.act(obs, noise[t], None, action_mask=env.action_mask)
        acting = time.perf_counter() - start
        print(f"  of the rollout: host training (env.step) {hosts:.1f} s, policy {acting:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        config, state, buffer = trainer(args.count_envs, folder)
        counter = DispatchCounter()
        with counter:
            train_batch(config, state, buffer, StopRequest())
        total = sum(counter.ops.values())
        print(
            f"one batch of {args.count_envs} hosts dispatches {total:,} ops "
            f"({total / config.horizon:,.0f} per env step with the update's share); "
            f"most frequent: {counter.ops.most_common(4)}"
        )


if __name__ == "__main__":
    main()
