"""esper eval --video on grow-mlp: a host drawn each epoch, its slots' stages,
accuracy and parameters, one frame per epoch acted in."""

from pathlib import Path

import numpy as np
import pytest
import torch
from growth_helpers import small_env

from esper.envs.growth import GrowMLP
from esper.envs.growth.picture import STAGE_COLOURS


def test_a_frame_shows_each_slot_s_stage_and_changes_as_the_host_grows() -> None:
    env = small_env(n=2, seed=1)
    act = GrowMLP.scripted["all-at-start"](env)
    bare = env.render(1)
    assert bare.dtype == np.uint8 and bare.shape[2] == 3
    assert bare.shape[0] % 2 == 0 and bare.shape[1] % 2 == 0  # as H.264 needs
    obs = env._observe()
    obs, *_ = env.step(act(obs, env.action_mask))  # every slot germinated: in isolation
    grown = env.render(1)
    training = STAGE_COLOURS[1]
    assert not (bare == training).all(axis=2).any()  # nothing in isolation at the start
    assert (grown == training).all(axis=2).sum() > 100  # the seeds' boxes, in its colour


def test_a_growth_episode_is_recorded_one_frame_per_epoch(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg")
    from esper.envs.video import record_video

    def wait(obs, starts, action_mask):
        assert action_mask is not None  # the policy acts under the task's mask
        return torch.zeros(obs.shape[0], dtype=torch.int64)

    options = {"max_epochs": 4, "train_size": 64, "val_size": 64, "steps_per_epoch": 2}
    path = tmp_path / "grow.mp4"
    frames = record_video("grow-mlp", wait, path, seed=0, options=options)
    assert frames == 4 and path.stat().st_size > 0
