"""Task names to batched environments: ``esper.envs.make(task, num_envs, device)``.

A task name is found, in this order, as:

- a built-in (``cartpole``, ...): a ``BatchedEnv`` subclass in this package;
- ``gym:ENV_ID`` (or ``gym-async:ENV_ID``, one process per copy): gymnasium's
  own env of that id behind the batched API (``esper.envs.gym_adapter``,
  imported only when such a task is asked for);
- a name given to ``esper.envs.register(name, factory)`` in this process;
- a name an installed package declares in the entry-point group ``esper.envs``
  (``[project.entry-points."esper.envs"] my-task = "my_pkg:MyEnv"``);
- ``package.module:Factory``, imported on the spot.

A factory is a ``BatchedEnv`` subclass, or any callable
``(num_envs=, device=, seed=) -> env`` (a ``spec`` attribute spares building
a copy to read the task's shapes). A task found in this process only
(``register``) records where its factory can be imported from
(``task_source``), so that a checkpoint lets a fresh process find it again.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from esper.envs.acrobot import Acrobot
from esper.envs.base import BatchedEnv, EnvSpec
from esper.envs.cartpole import CartPole, CartPoleNoVelocity
from esper.envs.close import close_env
from esper.envs.growth import GrowMLP
from esper.envs.gym_ids import (
    GYM_ASYNC_PREFIX,
    GYM_PREFIX,
    PETTINGZOO_PREFIX,
    gym_id_of,
    pettingzoo_target_of,
)
from esper.envs.minatar_breakout import MinAtarBreakout
from esper.envs.mountain_car import MountainCar, MountainCarContinuous
from esper.envs.pendulum import Pendulum
from esper.envs.probes import PROBES
from esper.envs.simple_spread import SimpleSpread
from esper.runtime.errors import ConfigError, UserError

if TYPE_CHECKING:
    from esper.envs.gym_adapter import GymTask, GymVectorEnv
    from esper.envs.pettingzoo_adapter import PettingZooTask, PettingZooVectorEnv

TASKS: dict[str, type[BatchedEnv]] = {
    CartPole.spec.name: CartPole,
    CartPoleNoVelocity.spec.name: CartPoleNoVelocity,
    Acrobot.spec.name: Acrobot,
    MountainCar.spec.name: MountainCar,
    MountainCarContinuous.spec.name: MountainCarContinuous,
    Pendulum.spec.name: Pendulum,
    MinAtarBreakout.spec.name: MinAtarBreakout,
    GrowMLP.spec.name: GrowMLP,
    SimpleSpread.spec.name: SimpleSpread,
    **{probe.spec.name: probe for probe in PROBES},
}

ENTRY_POINT_GROUP = "esper.envs"

TaskFactory = Callable[..., Any]  # (num_envs=, device=, seed=) -> a batched env


class UnknownTaskError(UserError, ValueError):
    setting = "task"

    def __init__(self, task: str, reason: str | None = None) -> None:
        if reason is None:
            reason = (
                f"known: {', '.join(task_names())}; or {GYM_PREFIX}ENV_ID, "
                f"{PETTINGZOO_PREFIX}MODULE, or package.module:Factory"
            )
        super().__init__(f"unknown task '{task}' ({reason})")
        self.task = task


@dataclass
class Task:
    """A named task that is not built in: its factory and where it came from."""

    name: str
    factory: TaskFactory
    origin: str  # "register()", "package <dist>", "module"
    source: str | None  # "module:qualname" a fresh process can import, if any
    defaults: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> EnvSpec:
        return factory_spec(self.factory)

    @property
    def on_device(self) -> bool:
        return bool(getattr(self.factory, "on_device", True))

    @property
    def restorable(self) -> bool:
        return bool(getattr(self.factory, "restorable", True))

    def __call__(self, num_envs: int, device: torch.device | str = "cpu", seed: int = 0) -> Any:
        return self.factory(num_envs=num_envs, device=device, seed=seed)


_REGISTERED: dict[str, Task] = {}


def register(name: str, factory: TaskFactory, *, defaults: Mapping[str, Any] | None = None) -> None:
    """Make ``--task name`` (and ``make(name, ...)``) build ``factory``'s env.

    ``defaults`` are ``PPOConfig`` values for the task (the factory's own
    ``default_config`` when omitted). Registering the same factory again is
    harmless; another factory under a taken name is an error.
    """
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"task name {name!r} must be non-empty, without ':' or outer spaces")
    if name in TASKS:
        raise ValueError(f"task name {name!r} is a built-in task")
    known = _REGISTERED.get(name)
    if known is not None and known.factory is not factory:
        raise ValueError(f"task {name!r} is already registered to {known.factory!r}")
    _REGISTERED[name] = Task(
        name,
        factory,
        origin="register()",
        source=import_path(factory),
        defaults=dict(defaults if defaults is not None else _declared_defaults(factory)),
    )


def import_path(obj: Any) -> str | None:
    """``module:qualname`` of ``obj`` if another process could import it there."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<locals>" in qualname:
        return None
    return f"{module}:{qualname}"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    """Installed packages' tasks; the first of two with one name wins."""
    found: dict[str, EntryPoint] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(point.name, point)
    return found


def _from_entry_point(name: str, point: EntryPoint) -> Task:
    dist = point.dist.name if point.dist is not None else "an installed package"
    try:
        factory = point.load()
    except Exception as exc:
        raise UnknownTaskError(
            name, f"entry point {point.value} of {dist} failed to load: {exc}"
        ) from None
    return Task(name, factory, f"package {dist}", point.value, _declared_defaults(factory))


def _from_module(spec: str) -> Task:
    """``package.module:Factory`` imported; the current directory is searched too."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UnknownTaskError(spec, "expected package.module:Factory")
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.append(str(Path.cwd()))
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except ImportError as exc:
        raise UnknownTaskError(spec, f"cannot import {module_name}: {exc}") from None
    except AttributeError:
        raise UnknownTaskError(spec, f"{module_name} has no attribute {attribute}") from None
    if not callable(target):
        raise UnknownTaskError(spec, f"{spec} is not a class or function")
    return Task(spec, target, "module", spec, _declared_defaults(target))


def _declared_defaults(factory: TaskFactory) -> dict[str, Any]:
    return dict(getattr(factory, "default_config", None) or {})


def task_names() -> list[str]:
    """Every task name known without importing anything: built-ins, registered, installed."""
    return sorted({*TASKS, *_REGISTERED, *_entry_points()})


def env_class(task: str) -> type[BatchedEnv] | GymTask | PettingZooTask | Task:
    """What builds ``task``: called as ``(num_envs=, device=, seed=)``, with a ``spec``."""
    if task in TASKS:
        return TASKS[task]
    gym_id = gym_id_of(task)
    if gym_id is not None:
        from esper.envs.gym_adapter import GymTask, registration_problem

        problem = registration_problem(gym_id)
        if problem is not None:
            raise UnknownTaskError(task, f"gymnasium: {problem}")
        found = GymTask(gym_id, asynchronous=task.startswith(GYM_ASYNC_PREFIX))
        found.spec  # noqa: B018 - an unsupported space is a one-line error here, not mid-run
        return found
    target = pettingzoo_target_of(task)
    if target is not None:
        from esper.envs.pettingzoo_adapter import MissingParallelEnv, PettingZooTask

        try:
            found = PettingZooTask(target)
            found.spec  # noqa: B018 - a missing module or unlike agents: one line here
        except MissingParallelEnv as missing:
            raise UnknownTaskError(task, missing.message) from None
        return found
    if task in _REGISTERED:
        return _REGISTERED[task]
    if task in _entry_points():
        _REGISTERED[task] = _from_entry_point(task, _entry_points()[task])
        return _REGISTERED[task]
    if ":" in task:
        _REGISTERED[task] = _from_module(task)
        return _REGISTERED[task]
    raise UnknownTaskError(task)


def task_source(task: str) -> str | None:
    """How a fresh process finds ``task`` again when its name alone is not enough:
    the ``module:qualname`` of a factory given to ``register``, else None."""
    known = _REGISTERED.get(task)
    if known is None or known.origin != "register()":
        return None
    return known.source


def recall_task(task: str, source: str | None) -> None:
    """Register ``task`` from the ``source`` a run recorded, if this process lacks it.

    Lets ``esper eval``, ``load_policy`` and a resume rebuild a task that was
    registered from Python in the training process.
    """
    if source is None or task in TASKS or task in _REGISTERED or task in _entry_points():
        return
    if ":" in task:
        return  # a module:Factory name is its own source
    found = _from_module(source)
    _REGISTERED[task] = Task(task, found.factory, "register()", source, found.defaults)


def task_defaults(task: str) -> dict[str, Any]:
    """``PPOConfig`` values a task's factory declares (empty when unknown)."""
    if task in TASKS:
        return dict(TASKS[task].default_config)
    if task.startswith((GYM_PREFIX, GYM_ASYNC_PREFIX, PETTINGZOO_PREFIX)):
        return {}
    try:
        builder = env_class(task)
    except UnknownTaskError:
        return {}
    return dict(builder.defaults) if isinstance(builder, Task) else {}


def factory_spec(factory: TaskFactory) -> EnvSpec:
    """The ``spec`` a factory declares, or that of one copy built on the CPU."""
    spec = getattr(factory, "spec", None)
    if isinstance(spec, EnvSpec):
        return spec
    env = factory(num_envs=1, device="cpu", seed=0)
    try:
        return env.spec
    finally:
        close_env(env)


def make(
    task: str,
    num_envs: int,
    device: torch.device | str = "cpu",
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
) -> BatchedEnv | GymVectorEnv | PettingZooVectorEnv:
    """Build ``num_envs`` copies of ``task`` on ``device``, seeded with ``seed``;
    ``options``: the task's own settings (a config's ``[task_options]``)."""
    builder = env_class(task)
    if not options:
        return builder(num_envs=num_envs, device=device, seed=seed)
    check_task_options(task, options)
    return builder(num_envs=num_envs, device=device, seed=seed, options=dict(options))


def check_task_options(task: str, options: Mapping[str, Any]) -> None:
    """Refuse, in one line naming the setting, options ``task`` does not take:
    a task takes them when its class parses them (``parse_options``)."""
    if not options:
        return
    builder = env_class(task)
    parse = getattr(builder, "parse_options", None)
    if parse is None:
        raise ConfigError("task_options", f"task {task} takes no options (got {sorted(options)})")
    parse(dict(options))


def task_spec(task: str, options: Mapping[str, Any] | None = None) -> EnvSpec:
    """``task``'s spec; with ``options``, that of one copy built with them (its
    shapes may depend on them: a growth task's slots)."""
    if not options:
        return env_class(task).spec
    env = make(task, 1, "cpu", seed=0, options=options)
    try:
        return env.spec
    finally:
        close_env(env)


class TaskRow(NamedTuple):
    """One line of ``esper tasks``."""

    name: str
    gym_id: str
    obs_dim: int
    action_space: str
    on_device: bool  # steps as batched tensors on the training device
    max_episode_steps: int | None  # None: gymnasium sets no time limit
    origin: str = "built-in"  # or "register()", "package <dist>", "module", "gymnasium"
    critic_obs_dim: int = 0  # of obs_dim, the entries only the critic reads
    obs: str = ""  # as shown: EnvSpec.describe_obs (``4×10×10`` for an image), and the agents


def describe_tasks(extra: tuple[str, ...] = ()) -> list[TaskRow]:
    """Every known task in name order, then ``extra`` task names (e.g. ``gym:...``).

    Describing a ``gym:`` task builds one copy of it to read its spaces, so an
    id that is unknown or has unsupported spaces raises here. An installed
    task that fails to load is listed with the reason instead of its spaces.
    """
    rows = []
    for task in [*task_names(), *extra]:
        try:
            builder = env_class(task)
        except UnknownTaskError as exc:
            if task in extra:
                raise
            rows.append(TaskRow(task, "-", 0, f"failed: {exc.message}", False, None, "?"))
            continue
        spec = builder.spec
        origin = getattr(builder, "origin", "gymnasium" if ":" in task else "built-in")
        rows.append(
            TaskRow(
                name=task,
                gym_id=spec.gym_id or "-",
                obs_dim=spec.obs_dim,
                action_space=spec.action_space.describe(),
                on_device=builder.on_device,
                max_episode_steps=spec.max_episode_steps,
                origin=origin,
                critic_obs_dim=spec.critic_obs_dim,
                obs=spec.describe_obs()
                + (f" ×{spec.n_agents} agents" if spec.is_multi_agent else ""),
            )
        )
    return rows
