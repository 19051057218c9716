"""``--task gym:ENV_ID``: any gymnasium environment behind the batched-env API.

gymnasium's own ``SyncVectorEnv`` steps the copies one by one on the CPU; this
adapter converts actions to NumPy and observations, rewards and flags to
tensors on the training device, so the trainer cannot tell it from a
``BatchedEnv`` except by ``on_device = False`` (every step crosses to the
host and back, so it is for tasks without a batched port, not for speed).

The vector env runs in gymnasium's ``SAME_STEP`` autoreset mode: a finished
copy is reset within the step that ended it and the observation it ended on
comes back in ``info["final_obs"]`` (with the mask ``info["_final_obs"]``),
which is exactly the batched-env contract.

Action masks come from either conventional place: ``info["action_mask"]``
(at reset and every step), or a ``Dict`` observation with an ``"action_mask"``
key, which ``MaskToInfo`` moves into the info so the policy observes the
rest. Either way the task is masked (``spec.has_action_mask``) and the mask is
kept in ``action_mask`` like a ``BatchedEnv``'s.
"""

from __future__ import annotations

import dataclasses
import math
from functools import cache, cached_property, partial
from typing import Any, ClassVar

import gymnasium
import numpy as np
import torch
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import FlattenObservation

from esper.envs.base import EnvSpec, SpecShapes, StepResult
from esper.envs.gym_ids import GYM_ASYNC_PREFIX, GYM_PREFIX
from esper.envs.spaces import ActionSpace, BoxSpace, DiscreteSpace, MultiDiscreteSpace
from esper.runtime.errors import UserError
from esper.runtime.extras import install_hint


def registration_problem(gym_id: str) -> str | None:
    """Why gymnasium does not know ``gym_id`` (its own message), or None if it does."""
    try:
        gymnasium.spec(gym_id)
    except gymnasium.error.Error as error:
        return str(error)
    return None


class UnsupportedSpaceError(UserError, ValueError):
    """A gymnasium space esper cannot train on: refused before any run starts."""

    setting = "task"


def observation_dim(gym_id: str, space: gymnasium.Space) -> int:
    """Width of the flat observation: a ``Box`` flattened, ``Discrete`` one-hot,
    ``Dict`` and ``Tuple`` (and ``MultiDiscrete``, ``MultiBinary``) flattened
    and joined, as gymnasium's ``FlattenObservation`` does."""
    if isinstance(space, gymnasium.spaces.Box):
        return math.prod(space.shape)
    if space.is_np_flattenable:
        return gymnasium.spaces.flatdim(space)
    raise UnsupportedSpaceError(
        f"{gym_id}: observation space {space} is not supported "
        "(Box, Discrete, MultiDiscrete, MultiBinary, and Dict or Tuple of them)"
    )


class MissingSimulatorError(UserError, ImportError):
    """A gymnasium id whose simulator package is not installed (MuJoCo, Box2D)."""

    setting = "task"


# gymnasium's simulator families and the esper extra that installs each.
SIMULATOR_EXTRAS = {"mujoco": "mujoco", "box2d": "box2d"}


def make_env(gym_id: str) -> gymnasium.Env:
    """``gymnasium.make(gym_id)``; a missing simulator is one line naming the extra."""
    try:
        return gymnasium.make(gym_id)
    except (gymnasium.error.DependencyNotInstalled, ImportError) as exc:
        entry = str(getattr(gymnasium.spec(gym_id), "entry_point", ""))
        extra = next((e for key, e in SIMULATOR_EXTRAS.items() if f".{key}." in entry), None)
        hint = f"; {install_hint(extra)}" if extra else ""
        raise MissingSimulatorError(f"{gym_id} needs a package that is not installed{hint}") from (
            exc
        )


MASK_KEY = "action_mask"  # gymnasium's conventional name, in the info or a Dict observation


class MaskToInfo(gymnasium.Wrapper):
    """A ``Dict`` observation's ``"action_mask"`` moved into the info: the
    policy observes the other keys, the trainer reads the mask."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        self.observation_space = without_mask(env.observation_space)

    def _split(self, obs: dict, info: dict) -> tuple[dict, dict]:
        rest = {key: value for key, value in obs.items() if key != MASK_KEY}
        return rest, {**info, MASK_KEY: obs[MASK_KEY]}

    def reset(self, **kwargs: Any) -> tuple[Any, dict]:
        return self._split(*self.env.reset(**kwargs))

    def step(self, action: Any) -> tuple[Any, ...]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        rest, info = self._split(obs, info)
        return rest, reward, terminated, truncated, info


def masked_in_observation(space: gymnasium.Space) -> bool:
    return isinstance(space, gymnasium.spaces.Dict) and MASK_KEY in space.spaces


def without_mask(space: gymnasium.spaces.Dict) -> gymnasium.spaces.Dict:
    """A ``Dict`` observation space less its action mask: what the policy observes."""
    return gymnasium.spaces.Dict({k: v for k, v in space.spaces.items() if k != MASK_KEY})


def make_flat(gym_id: str) -> gymnasium.Env:
    """``gymnasium.make(gym_id)``, its observations flattened when not a ``Box``
    (a ``Dict`` observation's action mask moved into the info first)."""
    env = make_env(gym_id)
    if masked_in_observation(env.observation_space):
        env = MaskToInfo(env)
    if not isinstance(env.observation_space, gymnasium.spaces.Box):
        observation_dim(gym_id, env.observation_space)  # refuse what cannot flatten
        env = FlattenObservation(env)
    return env


def image_layout(space: gymnasium.Space) -> str | None:
    """``"hwc"`` or ``"chw"`` for gymnasium's image spaces (a 3-D uint8 ``Box``), else
    None. gymnasium's images are channels last (Atari, CarRacing); a first axis of
    1, 3 or 4 with a wider last one is read as channels first already."""
    if not (
        isinstance(space, gymnasium.spaces.Box)
        and space.dtype == np.uint8
        and len(space.shape) == 3
    ):
        return None
    first, _, last = space.shape
    return "chw" if first in (1, 3, 4) and last not in (1, 3, 4) else "hwc"


def image_spec_fields(space: gymnasium.Space) -> dict[str, Any]:
    """``obs_shape`` ``(C, H, W)`` and ``obs_dtype`` uint8 for an image space, so
    its pixels reach the CNN unflattened and stay uint8; nothing otherwise."""
    layout = image_layout(space)
    if layout is None:
        return {}
    shape = space.shape if layout == "chw" else (space.shape[2], *space.shape[:2])
    return {"obs_shape": tuple(int(n) for n in shape), "obs_dtype": torch.uint8}


def convert_action_space(gym_id: str, space: gymnasium.Space) -> ActionSpace:
    """Our space for a gymnasium action space: ``Discrete``, 1-D ``MultiDiscrete``, 1-D ``Box``."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return DiscreteSpace(int(space.n))
    if isinstance(space, gymnasium.spaces.MultiDiscrete) and space.nvec.ndim == 1:
        return MultiDiscreteSpace(tuple(int(n) for n in space.nvec))
    if isinstance(space, gymnasium.spaces.Box) and len(space.shape) == 1:
        low = tuple(float(v) for v in space.low)
        high = tuple(float(v) for v in space.high)
        return BoxSpace(low=low, high=high)
    raise UnsupportedSpaceError(
        f"{gym_id}: action space {space} is not supported "
        "(only Discrete, 1-D MultiDiscrete and 1-D Box)"
    )


def env_spec(
    gym_id: str,
    observation_space: gymnasium.Space,
    action_space: gymnasium.Space,
    name: str | None = None,
    has_action_mask: bool = False,
) -> EnvSpec:
    """The ``EnvSpec`` of a gymnasium env from its single-copy spaces (the
    observation space as gymnasium declares it, before flattening, with any
    action mask moved out of it); the state is not exposed, so ``state_dim``
    is 0."""
    return EnvSpec(
        name=name or GYM_PREFIX + gym_id,
        gym_id=gym_id,
        obs_dim=observation_dim(gym_id, observation_space),
        state_dim=0,
        action_space=convert_action_space(gym_id, action_space),
        max_episode_steps=gymnasium.spec(gym_id).max_episode_steps,
        has_action_mask=has_action_mask,
        **image_spec_fields(observation_space),
    )


class GymVectorEnv(SpecShapes):
    """``num_envs`` copies of a gymnasium env, with ``BatchedEnv``'s methods.

    It cannot save the copies' physical state: ``state_dict`` only records
    which env it is, and ``load_state_dict`` leaves the running episodes as
    they are.
    """

    on_device: ClassVar[bool] = False
    restorable: ClassVar[bool] = False

    def __init__(
        self,
        gym_id: str,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        asynchronous: bool = False,
    ) -> None:
        """``asynchronous`` steps each copy in its own process (gymnasium's
        ``AsyncVectorEnv``): worth it when one step costs far more than the
        inter-process hop, as MuJoCo and Box2D steps do; not for classic control."""
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1 (got {num_envs})")
        self.gym_id = gym_id
        self.num_envs = num_envs
        self.device = torch.device(device)
        vector_env = AsyncVectorEnv if asynchronous else SyncVectorEnv
        self.envs = vector_env(
            [partial(make_flat, gym_id)] * num_envs, autoreset_mode=AutoresetMode.SAME_STEP
        )
        prefix = GYM_ASYNC_PREFIX if asynchronous else GYM_PREFIX
        try:
            self.spec = env_spec(
                gym_id,
                self.envs.single_observation_space,
                self.envs.single_action_space,
                name=prefix + gym_id,
                has_action_mask=probe_spec(gym_id).has_action_mask,
            )
        except UnsupportedSpaceError:
            self.envs.close()
            raise
        single_action = self.envs.single_action_space
        # gymnasium's Discrete(n, start) counts from ``start``; ours from 0.
        self._action_start = np.asarray(getattr(single_action, "start", 0), dtype=np.int64)
        self._action_dtype = single_action.dtype
        # Images travel [C, H, W], flattened, as uint8; everything else as float32.
        self._channels_last = image_layout(self.envs.single_observation_space) == "hwc"
        self._obs_np_dtype = np.uint8 if self.spec.obs_dtype == torch.uint8 else np.float32
        self._pending_seed: int | None = seed  # used by the first reset without a seed
        if self.spec.has_action_mask:
            width = self.spec.action_space.mask_width
            self.action_mask = torch.ones(num_envs, width, dtype=torch.bool, device=self.device)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every copy (copy ``i`` seeded ``seed + i``); obs ``[num_envs, obs_dim]``.

        Without a seed, the first reset uses the constructor's; later ones carry on
        each copy's own random stream."""
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        obs, info = self.envs.reset(seed=seed)
        self._read_mask(info)
        return self._obs_to_device(obs)

    def step(self, actions: torch.Tensor) -> StepResult:
        """Step every copy; finished copies reset, ``info["final_obs"]`` as ``BatchedEnv``."""
        host_actions = actions.detach().cpu().numpy()
        if self.spec.action_space.is_discrete:
            host_actions = host_actions.astype(np.int64) + self._action_start
            host_actions = host_actions.reshape(self.num_envs, *self.spec.action_space.shape)
        else:
            host_actions = host_actions.reshape(self.num_envs, -1).astype(self._action_dtype)
        obs, reward, terminated, truncated, info = self.envs.step(host_actions)
        final_obs = np.array(obs, dtype=self._obs_np_dtype)  # a copy: [num_envs, *single]
        for i in np.flatnonzero(info.get("_final_obs", ())):
            final_obs[i] = np.asarray(info["final_obs"][i]).reshape(final_obs.shape[1:])
        out_info = {"final_obs": self._obs_to_device(final_obs)}
        if self._read_mask(info):  # a reset copy's is its new episode's: SAME_STEP mode
            out_info["action_mask"] = self.action_mask
        return (
            self._obs_to_device(obs),
            self._to_device(reward, flatten=False),
            torch.as_tensor(terminated, dtype=torch.bool).to(self.device),
            torch.as_tensor(truncated, dtype=torch.bool).to(self.device),
            out_info,
        )

    def _read_mask(self, info: dict[str, Any]) -> bool:
        """Copy the vector info's action masks into ``action_mask``; False when unmasked."""
        if self.action_mask is None:
            return False
        if MASK_KEY not in info:
            raise ValueError(f"{self.spec.name} stopped giving info[{MASK_KEY!r}]")
        rows = np.asarray(info[MASK_KEY]).reshape(self.num_envs, -1).astype(bool)
        self.action_mask.copy_(torch.as_tensor(rows))
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"gym_id": self.gym_id, "num_envs": self.num_envs}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Only checks the saved env is this one: gymnasium envs cannot be restored."""
        if saved.get("gym_id") != self.gym_id or saved.get("num_envs") != self.num_envs:
            raise ValueError(
                f"saved environment {saved.get('gym_id')} x{saved.get('num_envs')} "
                f"does not match {GYM_PREFIX}{self.gym_id} x{self.num_envs}"
            )

    def close(self) -> None:
        self.envs.close()

    def _obs_to_device(self, obs: np.ndarray) -> torch.Tensor:
        """``[num_envs, obs_dim]`` in the spec's dtype; images moved to channels first."""
        array = np.asarray(obs, dtype=self._obs_np_dtype)
        if self._channels_last:
            array = np.ascontiguousarray(array.transpose(0, 3, 1, 2))  # [n, C, H, W]
        tensor = torch.as_tensor(array).reshape(self.num_envs, -1)
        return tensor.to(self.device)

    def _to_device(self, array: np.ndarray, flatten: bool = True) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(array), dtype=torch.float32)
        if flatten:
            tensor = tensor.reshape(self.num_envs, -1)
        return tensor.to(self.device)


@cache
def probe_spec(gym_id: str) -> EnvSpec:
    """The ``EnvSpec`` of ``gym:gym_id``, read from one env built and closed.

    Once per id in a process: validating a task, describing it and building
    its copies all ask, and a gymnasium env can take seconds to build (MuJoCo,
    Box2D). A failure is not remembered, so it is raised again on each ask.
    """
    env = make_env(gym_id)
    try:
        space, masked = env.observation_space, masked_in_observation(env.observation_space)
        if masked:
            space = without_mask(space)
        spec = env_spec(gym_id, space, env.action_space)  # refuses unsupported spaces first
        if not masked and spec.action_space.is_discrete:
            _, info = env.reset(seed=0)  # the other convention: the mask in the info
            masked = MASK_KEY in info
        return dataclasses.replace(spec, has_action_mask=masked) if masked else spec
    finally:
        env.close()


class GymTask:
    """What ``env_class("gym:ID")`` returns: called like a ``BatchedEnv`` class.

    ``spec`` reads the spaces of one probe env (``probe_spec``), so the task can
    be described (or rejected for unsupported spaces) without building copies.
    """

    on_device: ClassVar[bool] = False
    restorable: ClassVar[bool] = False  # gymnasium's environments cannot be saved

    def __init__(self, gym_id: str, asynchronous: bool = False) -> None:
        self.gym_id = gym_id
        self.asynchronous = asynchronous
        self.name = (GYM_ASYNC_PREFIX if asynchronous else GYM_PREFIX) + gym_id

    @cached_property
    def spec(self) -> EnvSpec:
        spec = probe_spec(self.gym_id)
        return spec if spec.name == self.name else dataclasses.replace(spec, name=self.name)

    def __call__(
        self, num_envs: int, device: torch.device | str = "cpu", seed: int = 0
    ) -> GymVectorEnv:
        return GymVectorEnv(
            self.gym_id, num_envs=num_envs, device=device, seed=seed, asynchronous=self.asynchronous
        )
