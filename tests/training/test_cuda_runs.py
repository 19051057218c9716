"""Every run test_cuda.py trains on the GPU is one the trainer accepts: checked
on the CPU, where a refused config costs seconds, not a GPU's first minutes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cuda_runs import cuda_settings

from esper.config.schema import PPOConfig
from esper.envs import task_names
from esper.runs.directory import RunDir
from esper.training.state import build_state


@pytest.mark.parametrize("task", task_names())
def test_every_task_s_cuda_run_builds(task: str, tmp_path: Path) -> None:
    config = PPOConfig(**cuda_settings(task, tmp_path, 4, device="cpu"))
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    assert (state.env.num_envs, state.env.copies) == (64 * state.env.n_agents, 64)  # agents: rows
