"""Videos of a policy's episodes: ``esper eval --video`` and ``--video-every``.

A built-in task is stepped as one batched copy on the device; its states are
kept there and cross to the host once, then drawn by the task's renderer
(``envs/render.py``). A ``gym:`` task is recorded from a separate gymnasium
env made with ``render_mode="rgb_array"``. Each frame shows the state an action
was chosen in, so an episode of length L is L frames. Writing MP4 needs the
optional extra ``esper-rl[video]`` (imageio with its ffmpeg).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.envs.agents import make_rows
from esper.envs.base import BatchedEnv
from esper.envs.gym_ids import gym_id_of
from esper.envs.registry import env_class
from esper.envs.render import RENDERERS
from esper.runtime.errors import ConfigError
from esper.runtime.extras import import_extra

# (obs [1, obs_dim], starts [1] bool: an episode begins here, action_mask [1,
# mask_width] bool or None) -> the env's actions
Act = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]
GYM_FPS = 30  # when a gymnasium env does not say its render_fps
NO_TIME_LIMIT_STEPS = 100_000  # a video of a task without a time limit stops here


def _draws_itself(task: str) -> bool:
    """A batched task whose class overrides ``BatchedEnv.render`` (a registered
    factory that is a function cannot say before it builds one: not recorded)."""
    found = env_class(task)
    cls = getattr(found, "factory", found)  # a registered or installed task's class
    return isinstance(cls, type) and issubclass(cls, BatchedEnv) and cls.renders()


def check_recordable(task: str, setting: str) -> None:
    """Refuse, in one line naming ``setting``, a task esper cannot draw or a
    missing video extra."""
    if gym_id_of(task) is None and task not in RENDERERS and not _draws_itself(task):
        raise ConfigError(
            setting,
            f"task {task} has no renderer; videos work for {', '.join(RENDERERS)}, gym: "
            "tasks and tasks that define BatchedEnv.render (docs/custom_env.md)",
        )
    import_extra("imageio", "video", setting)
    import_extra("imageio_ffmpeg", "video", setting)


@torch.no_grad()
def record_video(
    task: str,
    act: Act,
    path: Path,
    *,
    seed: int,
    device: torch.device | str = "cpu",
    episodes: int = 1,
    setting: str = "video",
    options: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> int:
    """Record ``episodes`` complete episodes of ``act`` on ``task`` (built with
    its ``options``) to ``path`` (MP4); return the number of frames written.
    ``settings`` (the run's config) lay out a task with several agents as the
    policy saw them (envs/agents.py)."""
    check_recordable(task, setting)
    if episodes < 1:
        raise ConfigError("episodes", f"must be >= 1 (got {episodes})")
    gym_id = gym_id_of(task)
    if gym_id is not None:
        frames, fps = _gym_frames(gym_id, act, seed, device, episodes)
    elif task in RENDERERS:
        frames, fps = _batched_frames(task, act, seed, device, episodes, settings or {})
    else:
        frames, fps = _rendered_frames(task, act, seed, device, episodes, options, settings)
    _write(path, frames, fps, setting)
    return len(frames)


def _batched_frames(
    task: str,
    act: Act,
    seed: int,
    device: torch.device | str,
    episodes: int,
    settings: Mapping[str, Any],
) -> tuple[list[np.ndarray], int]:
    env = make_rows(task, 1, device, seed, settings)
    task_env = getattr(env, "task", env)  # with several agents, the task under the rows
    renderer = RENDERERS[task]
    limit = episodes * env.spec.max_episode_steps  # built-in tasks all have a time limit
    obs = env.reset(seed=seed)
    states, ends = [], []
    starts = torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device)
    for _ in range(limit):
        states.append(task_env.state[0].clone())  # the state this action is chosen in
        obs, _, terminated, truncated, _ = env.step(act(obs, starts, env.action_mask))
        starts = terminated | truncated
        ends.append(starts[:1])  # the copy's end: every one of its rows ends with it
    # host-sync: once per video, the states and episode ends together
    visited = torch.stack(states).double().cpu().numpy()  # [limit, state_dim]
    ended = torch.cat(ends).cpu().numpy()  # [limit]
    last = int(np.flatnonzero(ended)[episodes - 1]) if ended.sum() >= episodes else limit - 1
    return [renderer.draw(state) for state in visited[: last + 1]], renderer.fps


def _rendered_frames(
    task: str,
    act: Act,
    seed: int,
    device: torch.device | str,
    episodes: int,
    options: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> tuple[list[np.ndarray], int]:
    """Frames from the task's own ``render`` (``BatchedEnv.render``), one per step
    of one copy (every agent of it): the picture crosses to the host each step,
    as drawing needs."""
    env = make_rows(task, 1, device, seed, settings or {}, options)
    obs = env.reset(seed=seed)
    starts = torch.ones(obs.shape[0], dtype=torch.bool, device=obs.device)
    frames: list[np.ndarray] = []
    limit = episodes * (env.spec.max_episode_steps or NO_TIME_LIMIT_STEPS)
    ended = 0
    for _ in range(limit):
        frames.append(np.asarray(env.render(0), dtype=np.uint8))  # the state acted in
        obs, _, terminated, truncated, _ = env.step(act(obs, starts, env.action_mask))
        starts = terminated | truncated
        ended += int(starts[0])  # host-sync: one per frame, which crossed anyway
        if ended >= episodes:
            break
    return frames, env.render_fps


def _gym_frames(
    gym_id: str, act: Act, seed: int, device: torch.device | str, episodes: int
) -> tuple[list[np.ndarray], int]:
    import gymnasium
    from gymnasium.spaces import Box, Discrete, MultiDiscrete, flatten

    env = gymnasium.make(gym_id, render_mode="rgb_array")
    frames: list[np.ndarray] = []
    try:
        space = env.action_space
        obs, _ = env.reset(seed=seed)
        for _ in range(episodes):
            done, starts = False, torch.ones(1, dtype=torch.bool, device=device)
            while not done:
                frames.append(np.asarray(env.render(), dtype=np.uint8))
                flat = flatten(env.observation_space, obs)
                action = act(
                    torch.as_tensor(flat, dtype=torch.float32, device=device)[None], starts, None
                )
                starts = torch.zeros_like(starts)
                host = action[0].cpu().numpy()
                if isinstance(space, Discrete):
                    host = int(host) + int(space.start)
                elif isinstance(space, MultiDiscrete):
                    host = host.astype(np.int64).reshape(space.shape) + space.start
                elif isinstance(space, Box):
                    host = host.astype(space.dtype).reshape(space.shape)
                obs, _, terminated, truncated, _ = env.step(host)
                done = bool(terminated or truncated)
            obs, _ = env.reset()
        fps = int(env.metadata.get("render_fps") or GYM_FPS)
    finally:
        env.close()
    return frames, fps


def _write(path: Path, frames: list[np.ndarray], fps: int, setting: str) -> None:
    """Write the MP4 beside ``path`` and rename it there: never half a file."""
    imageio = import_extra("imageio.v2", "video", setting)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(setting, f"cannot write {path}: {exc.strerror or exc}") from None
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")  # ffmpeg reads the suffix
    try:
        writer = imageio.get_writer(
            tmp, format="FFMPEG", fps=fps, codec="libx264", macro_block_size=2
        )
        try:
            for frame in frames:
                writer.append_data(frame)
        finally:
            writer.close()
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
