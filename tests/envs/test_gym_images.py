"""gymnasium image spaces (3-D uint8 ``Box``) take the image path: [C, H, W], uint8."""

from __future__ import annotations

from pathlib import Path

import pytest

gymnasium = pytest.importorskip("gymnasium")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from esper.config.schema import PPOConfig  # noqa: E402
from esper.envs import make  # noqa: E402
from esper.envs.gym_adapter import image_layout, image_spec_fields  # noqa: E402
from esper.telemetry.hub import TelemetryHub  # noqa: E402
from esper.training import run_vectorized_ppo  # noqa: E402

GYM_ID = "EsperPixelTest-v0"
H, W, C = 5, 7, 3


class PixelEnv(gymnasium.Env):
    """A channels-last uint8 image whose pixel (row, col, channel) holds
    ``(10 * row + col + 100 * channel + step) % 256``; three steps an episode."""

    observation_space = gymnasium.spaces.Box(0, 255, (H, W, C), np.uint8)
    action_space = gymnasium.spaces.Discrete(2)

    def _obs(self) -> np.ndarray:
        row, col, channel = np.indices((H, W, C))
        return ((10 * row + col + 100 * channel + self.t) % 256).astype(np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), float(action), self.t >= 3, False, {}


if GYM_ID not in gymnasium.registry:
    gymnasium.register(GYM_ID, entry_point=PixelEnv, max_episode_steps=50)


def test_an_image_space_declares_channels_first_uint8() -> None:
    space = PixelEnv.observation_space
    assert image_layout(space) == "hwc"
    assert image_spec_fields(space) == {"obs_shape": (C, H, W), "obs_dtype": torch.uint8}
    assert image_layout(gymnasium.spaces.Box(0, 255, (3, 8, 8), np.uint8)) == "chw"
    assert image_layout(gymnasium.spaces.Box(0.0, 1.0, (8, 8, 3), np.float32)) is None
    assert image_spec_fields(gymnasium.spaces.Box(-1.0, 1.0, (4,))) == {}


def test_pixels_arrive_channels_first_and_stay_uint8() -> None:
    env = make(f"gym:{GYM_ID}", 2, "cpu")
    try:
        assert env.spec.obs_shape == (C, H, W) and env.spec.obs_dtype == torch.uint8
        obs = env.reset(seed=0)
        assert obs.dtype == torch.uint8 and obs.shape == (2, C * H * W)
        assert torch.equal(obs[0].view(C, H, W), torch.as_tensor(_chw(0)))
        for _ in range(3):
            obs, _, terminated, _, info = env.step(torch.zeros(2, dtype=torch.int64))
        assert terminated.all()
        assert torch.equal(info["final_obs"][1].view(C, H, W), torch.as_tensor(_chw(3)))
        assert info["final_obs"].dtype == torch.uint8
        assert torch.equal(obs[1].view(C, H, W), torch.as_tensor(_chw(0)))  # reset
    finally:
        env.close()


def _chw(t: int) -> np.ndarray:
    channel, row, col = np.indices((C, H, W))
    return ((10 * row + col + 100 * channel + t) % 256).astype(np.uint8)


def test_a_cnn_trains_on_a_gym_image_task(tmp_path: Path) -> None:
    config = PPOConfig(
        task=f"gym:{GYM_ID}", encoder="cnn", n_envs=2, horizon=8, n_minibatches=2,
        hidden_sizes=(8,), device="cpu", run_dir=str(tmp_path), n_batches=1,
    )  # fmt: skip
    assert run_vectorized_ppo(config, TelemetryHub()).status == "completed"
