"""Every tensor of a training batch lives on the training device, proven without a GPU.

The whole loop (``run_vectorized_ppo``: environment reset and steps, rollout,
GAE, the PPO update with backward and the optimizer step, the checkpoint, and a
resume from it) runs on torch's ``meta`` device. Meta tensors have shapes,
dtypes and autograd but no values, and an op that mixes them with a CPU tensor
raises the same device-mismatch error CUDA would ("Tensor on device cpu is not
on the expected device meta"), while 0-dim CPU scalars and cross-device
``copy_`` stay allowed, as on CUDA. So a tensor made on the CPU by mistake
anywhere on the path fails this test on a machine with no GPU.

What needs values is stubbed, and only that:
- the batch's one host transfer of statistics (``tolist``) returns zeros and
  is counted: exactly one per batch;
- the environments' random generator is a CPU ``torch.Generator`` (torch has
  no generator for ``meta``; a CUDA run gets a CUDA one, and CUDA and CPU
  generators are both accepted by factory calls on any device here);
- a checkpoint is read back with CPU tensors in place of the meta tensors it
  holds, as ``torch.load(map_location="cpu")`` returns a real checkpoint, so a
  restore that forgets to move a tensor to the device is caught in the batch
  after the resume.

torch's fake-tensor mode (tensors that report ``cuda:0``) was the other
candidate; in torch 2.15 ``Module.to`` cannot move a fake parameter (it swaps
tensors, which fake tensors refuse), ``torch.Generator("cuda")`` needs a driver
and ``torch.save`` cannot pickle fake tensors, so it would need more stubs
than the code it checks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import esper.training.loop as loop
from esper.config.schema import PPOConfig
from esper.envs import task_names
from esper.envs.registry import env_class
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo

DEVICE = torch.device("meta")

# Loading a checkpoint's CPU tensors into meta modules copies no values; torch says so.
pytestmark = pytest.mark.filterwarnings("ignore:.*copying from a non-meta parameter:UserWarning")


class HostTransfers:
    """Stands in for the batch's host transfer on the meta device, and counts it."""

    def __init__(self) -> None:
        self.count = 0
        self._tolist = torch.Tensor.tolist

    def __call__(self, tensor: torch.Tensor) -> Any:
        if tensor.device != DEVICE:
            return self._tolist(tensor)
        self.count += 1
        return [0.0] * tensor.numel()  # statistics of a batch in which no episode ended


class HostGenerator(torch.Generator):
    """``torch.Generator`` that gives a CPU generator where the meta device is asked for."""

    def __new__(cls, device: torch.device | str = "cpu") -> torch.Generator:
        real = cls.__mro__[1]
        return real.__new__(real, "cpu" if torch.device(device) == DEVICE else device)


def _load_as_on_cpu(real_load):
    """``torch.load`` whose meta tensors come back as CPU tensors of the same
    shape and dtype, as a real checkpoint does under ``map_location="cpu"``."""

    def to_cpu(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.device == DEVICE:
            return torch.zeros(value.shape, dtype=value.dtype)
        if isinstance(value, dict):
            return {key: to_cpu(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(to_cpu(item) for item in value)
        return value

    def load(*args: Any, **kwargs: Any) -> Any:
        return to_cpu(real_load(*args, **kwargs))

    return load


@pytest.fixture
def on_meta(monkeypatch: pytest.MonkeyPatch) -> HostTransfers:
    transfers = HostTransfers()
    monkeypatch.setattr(loop, "resolve_device", lambda requested: DEVICE)
    monkeypatch.setattr(torch.Tensor, "tolist", lambda tensor: transfers(tensor))
    monkeypatch.setattr(torch, "Generator", HostGenerator)
    monkeypatch.setattr(torch, "load", _load_as_on_cpu(torch.load))
    return transfers


def train(run_dir: Path, task: str, start: int = 0) -> dict[str, Any]:
    images = len(env_class(task).spec.obs_shape) > 1  # pixels scale themselves: no normaliser
    config = PPOConfig(
        task=task,
        n_envs=8,
        horizon=4,
        n_minibatches=2,
        update_epochs=2,
        normalize_obs=not images,
        normalize_reward=True,
        device="cpu",  # replaced by the meta device (the fixture)
        run_dir=str(run_dir),
        n_batches=1,
        start_batch=start,
    )
    result = run_vectorized_ppo(config, TelemetryHub())
    assert result.status == "completed", result.reason
    return result.last_batch


@pytest.mark.parametrize("task", task_names())
def test_a_batch_and_a_resume_keep_every_tensor_on_the_device(
    task: str, tmp_path: Path, on_meta: HostTransfers
) -> None:
    train(tmp_path, task)
    assert (tmp_path / "checkpoints" / "batch_000001.pt").exists()
    resumed = train(tmp_path, task, start=1)
    assert resumed["env_steps"] == 2 * 8 * 4
    assert on_meta.count == 2  # one host transfer per batch, no more


def test_a_cpu_tensor_in_the_rollout_is_caught(
    tmp_path: Path, on_meta: HostTransfers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check itself can fail: a reward left on the CPU by one env step."""
    from esper.envs.cartpole import CartPole

    step = CartPole.step

    def step_with_cpu_reward(self, actions):
        obs, _reward, terminated, truncated, info = step(self, actions)
        return obs, torch.zeros(self.num_envs), terminated, truncated, info

    monkeypatch.setattr(CartPole, "step", step_with_cpu_reward)
    with pytest.raises(RuntimeError, match="device"):
        train(tmp_path, "cartpole")
