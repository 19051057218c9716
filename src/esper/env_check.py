"""``esper check-env TASK``: a task checked against the batched-environment contract.

Each rule runs on its own; a rule that fails (or raises) says what is wrong
and how to fix it, and the others still run. The contract is
ARCHITECTURE.md's: obs ``[num_envs, obs_dim]`` float32, reward ``[num_envs]``
float32, flags ``[num_envs]`` bool, every tensor on the env's device,
finished copies reset themselves and leave their last observation in
``info["final_obs"]``, the time limit truncates, a seed reproduces the
episodes, ``state_dict`` round-trips, and a step never reads a tensor on the host.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from esper.envs.registry import env_class
from esper.envs.spaces import ActionSpace, DiscreteSpace, MultiDiscreteSpace
from esper.host_sync import HostSyncError, host_reads_forbidden

PASS, FAIL, SKIP = "pass", "FAIL", "skip"


# What a failed replay says, with {name} (the diverging tensor) and {step} filled in.
NOT_DETERMINISTIC = (
    "same seed and actions, different {name} at step {step}: draw every "
    "random number from self.generator"
)
NOT_RESTORED = (
    "after load_state_dict the {name} differs at step {step}: state_dict "
    "must hold every tensor the dynamics read (and the generator's state)"
)


@dataclass
class RuleResult:
    rule: str
    status: str  # PASS, FAIL or SKIP
    detail: str = ""  # what was seen; for a failure, what is wrong and the fix


@dataclass
class CheckReport:
    task: str
    device: str
    facts: dict[str, str] = field(default_factory=dict)  # spaces and shapes, for the header
    results: list[RuleResult] = field(default_factory=list)
    steps_per_second: dict[int, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(r.status != FAIL for r in self.results)

    def failed(self) -> list[str]:
        return [r.rule for r in self.results if r.status == FAIL]


class RuleFailure(Exception):
    """A broken rule: the message says what is wrong and how to fix it."""


def random_actions(env: Any, generator: torch.Generator) -> torch.Tensor:
    """A batch of valid random actions on the env's device."""
    space = env.action_space
    n = env.num_envs
    if isinstance(space, DiscreteSpace):
        drawn = torch.randint(space.n, (n,), generator=generator)
    elif isinstance(space, MultiDiscreteSpace):
        upper = torch.tensor(space.nvec)
        drawn = (torch.rand(n, len(space.nvec), generator=generator) * upper).long()
    else:
        low, high = torch.tensor(space.low), torch.tensor(space.high)
        drawn = low + (high - low) * torch.rand(n, space.dim, generator=generator)
    return drawn.to(env.device)


def _actions(env: Any, count: int, seed: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [random_actions(env, generator) for _ in range(count)]


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise RuleFailure(message)


def _check_tensor(
    name: str, value: Any, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
) -> None:
    _expect(
        isinstance(value, torch.Tensor),
        f"{name} is a {type(value).__name__}, not a torch.Tensor: return tensors",
    )
    _expect(
        tuple(value.shape) == shape,
        f"{name} has shape {tuple(value.shape)}, want {shape}: "
        + (
            "obs_dim in the spec must match what observe() returns"
            if "obs" in name
            else "one value per copy"
        ),
    )
    _expect(
        value.dtype == dtype,
        f"{name} is {value.dtype}, want {dtype}: convert with .to({dtype})",
    )
    _expect(
        value.device == device,
        f"{name} is on {value.device}, the env on {device}: make it with device=self.device",
    )


def _check_step(env: Any, out: Any) -> None:
    _expect(
        isinstance(out, tuple) and len(out) == 5,
        "step() must return (obs, reward, terminated, truncated, info)",
    )
    obs, reward, terminated, truncated, info = out
    n, device = env.num_envs, env.device
    _check_tensor("obs", obs, (n, env.obs_dim), torch.float32, device)
    _check_tensor("reward", reward, (n,), torch.float32, device)
    _check_tensor("terminated", terminated, (n,), torch.bool, device)
    _check_tensor("truncated", truncated, (n,), torch.bool, device)
    _expect(
        isinstance(info, dict) and "final_obs" in info,
        'info has no "final_obs": return the observation each copy reached before any '
        "reset (BatchedEnv.step does this for you)",
    )
    _check_tensor('info["final_obs"]', info["final_obs"], (n, env.obs_dim), torch.float32, device)
    _expect(bool(torch.isfinite(obs).all()), "obs holds NaN or inf")
    _expect(bool(torch.isfinite(reward).all()), "reward holds NaN or inf")


def _skip_unless(env: Any, capability: str, why: str) -> None:
    """Skip a rule that needs ``capability`` (a flag environments declare, True
    unless they say otherwise) on an environment that lacks it."""
    if not getattr(env, capability, True):
        raise _Skip(f"{why} ({capability} = False)")


def _expect_same_steps(first: Any, second: Any, actions: list[torch.Tensor], fix: str) -> None:
    """Step both envs with ``actions``; ``fix`` (with ``{name}`` and ``{step}``) if they part."""
    for t, a in enumerate(actions):
        x, y = first.step(a), second.step(a)
        for name, u, v in zip(("obs", "reward", "terminated", "truncated"), x, y, strict=False):
            _expect(torch.equal(u, v), fix.format(name=name, step=t + 1))


class Checker:
    """The rules, each a method returning a detail line or raising ``RuleFailure``."""

    def __init__(self, build: Callable[..., Any], device: torch.device, num_envs: int) -> None:
        self.build = build
        self.device = device
        self.num_envs = num_envs

    def make(self, num_envs: int | None = None, seed: int = 0) -> Any:
        return self.build(num_envs=num_envs or self.num_envs, device=self.device, seed=seed)

    def spaces(self, env: Any) -> str:
        space = env.action_space
        _expect(
            isinstance(space, ActionSpace),
            f"action_space is {space!r}: use esper.envs.DiscreteSpace, BoxSpace "
            "or MultiDiscreteSpace",
        )
        _expect(env.obs_dim >= 1, f"obs_dim is {env.obs_dim}: must be >= 1")
        _expect(
            env.num_envs == self.num_envs, f"num_envs is {env.num_envs}, asked for {self.num_envs}"
        )
        return f"obs_dim {env.obs_dim}, actions {space.describe()}"

    def reset(self, env: Any) -> str:
        obs = env.reset(seed=0)
        _check_tensor("reset() obs", obs, (env.num_envs, env.obs_dim), torch.float32, env.device)
        return f"[{env.num_envs}, {env.obs_dim}] float32 on {env.device}"

    def step(self, env: Any) -> str:
        env.reset(seed=0)
        for actions in _actions(env, 3, seed=1):
            _check_step(env, env.step(actions))
        return "obs, reward, terminated, truncated, final_obs: shapes, dtypes, device"

    def auto_reset(self, env: Any) -> str:
        env.reset(seed=0)
        limit = (env.spec.max_episode_steps or 1000) + 1
        finished = 0
        for actions in _actions(env, limit, seed=2):
            obs, _, terminated, truncated, info = env.step(actions)
            done = terminated | truncated
            same = (info["final_obs"] == obs).all(dim=1)
            _expect(
                bool(same[~done].all()),
                'info["final_obs"] differs from obs for copies that did not finish: '
                "it must be the observation each copy reached, equal to obs unless it reset",
            )
            finished += int(done.sum())
            if finished and bool((same[done] == False).any()):  # noqa: E712
                return f"{finished} finished copies reset; final_obs kept their last observation"
        _expect(finished > 0, f"no copy finished within {limit} random steps")
        # every finished copy's final_obs equalled its fresh obs: allowed, but unusual
        return f"{finished} finished copies; their final_obs equalled the fresh obs"

    def time_limit(self, env: Any) -> str:
        limit = env.spec.max_episode_steps
        if limit is None:
            raise _Skip("the task has no time limit")
        env.reset(seed=0)
        age = torch.zeros(env.num_envs, dtype=torch.int64, device=env.device)
        truncations = 0
        for actions in _actions(env, limit + 1, seed=3):
            _, _, terminated, truncated, _ = env.step(actions)
            age += 1
            early = truncated & (age != limit)
            if bool(early.any()):
                raise RuleFailure(
                    f"a copy was truncated after {int(age[early][0])} steps, the time limit "
                    f"is {limit}: truncate exactly at spec.max_episode_steps"
                )
            _expect(
                not bool(((age >= limit) & ~(terminated | truncated)).any()),
                f"a copy ran {limit} steps without being truncated: set truncated at "
                "spec.max_episode_steps",
            )
            truncations += int(truncated.sum())
            age.masked_fill_(terminated | truncated, 0)
        if truncations == 0:
            return f"limit {limit}: never truncates early (random actions end episodes sooner)"
        return f"limit {limit}: {truncations} truncations, each at exactly {limit} steps"

    def determinism(self, env: Any) -> str:
        first, second = self.make(seed=7), self.make(seed=7)
        try:
            a, b = first.reset(seed=11), second.reset(seed=11)
            _expect(
                torch.equal(a, b),
                "two resets with one seed gave different observations: "
                "draw initial states from self.generator",
            )
            _expect_same_steps(first, second, _actions(first, 50, seed=4), NOT_DETERMINISTIC)
        finally:
            _close(first, second)
        return "same seed, same actions: identical 50 steps"

    def save_restore(self, env: Any) -> str:
        _skip_unless(env, "restorable", "this environment cannot save its episodes")
        env.reset(seed=0)
        actions = _actions(env, 40, seed=5)
        for a in actions[:20]:
            env.step(a)
        saved = env.state_dict()
        restored = self.make(seed=99)
        try:
            restored.reset(seed=99)
            restored.load_state_dict(saved)
            _expect_same_steps(env, restored, actions[20:], NOT_RESTORED)
        finally:
            _close(restored)
        return "20 steps, save, load into a fresh env: the next 20 steps identical"

    def host_sync(self, env: Any) -> str:
        _skip_unless(env, "on_device", "steps on the CPU: crossing to the host is its design")
        env.reset(seed=0)
        actions = _actions(env, 20, seed=6)
        try:
            with host_reads_forbidden():
                for a in actions:
                    env.step(a)
        except HostSyncError as exc:
            raise RuleFailure(
                f"step() reads a tensor on the host ({exc}), which waits for the GPU every "
                "step: use torch.where / masks instead of Python ifs on tensors, and keep "
                ".item()/.cpu()/.tolist() out of step"
            ) from None
        return "20 steps with every host read forbidden"


class _Skip(Exception):
    pass


RULES: tuple[tuple[str, str], ...] = (
    ("spaces", "spaces"),
    ("reset", "reset() observation"),
    ("step", "step() tensors"),
    ("auto_reset", 'auto-reset and info["final_obs"]'),
    ("time_limit", "truncation at the time limit"),
    ("determinism", "determinism under a seed"),
    ("save_restore", "state_dict round trip"),
    ("host_sync", "no host sync per step"),
)


def measure_speed(
    build: Callable[..., Any], device: torch.device, num_envs: int, steps: int = 100
) -> float:
    """Environment steps per second (copies x steps) of random actions."""
    env = build(num_envs=num_envs, device=device, seed=0)
    env.reset(seed=0)
    actions = _actions(env, steps + 10, seed=8)
    for a in actions[:10]:
        env.step(a)
    _synchronize(device)
    start = time.perf_counter()
    for a in actions[10:]:
        env.step(a)
    _synchronize(device)
    seconds = time.perf_counter() - start
    _close(env)
    return num_envs * steps / seconds


def _close(*envs: Any) -> None:
    """Close what has a ``close`` (gymnasium's vector envs; ``gym-async:`` workers)."""
    for env in envs:
        close = getattr(env, "close", None)
        if close is not None:
            close()


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_env(
    task: str,
    device: torch.device | str = "cpu",
    num_envs: int = 8,
    speed_sizes: Sequence[int] = (1, 64, 1024),
) -> CheckReport:
    """Run every rule over ``task`` (a task name, as ``--task`` takes)."""
    return check_factory(env_class(task), task, device, num_envs, speed_sizes)


def check_factory(
    build: Callable[..., Any],
    task: str,
    device: torch.device | str = "cpu",
    num_envs: int = 8,
    speed_sizes: Sequence[int] = (1, 64, 1024),
) -> CheckReport:
    """``check_env`` over anything called ``(num_envs=, device=, seed=)``."""
    device = torch.device(device)
    report = CheckReport(task=task, device=str(device))
    checker = Checker(build, device, num_envs)
    try:
        env = checker.make()
    except Exception as exc:
        report.results.append(RuleResult("builds", FAIL, f"{type(exc).__name__}: {exc}"))
        return report
    spec = env.spec
    report.facts = {
        "name": str(spec.name),
        "obs": f"[num_envs, {spec.obs_dim}] float32",
        "actions": spec.action_space.describe(),
        "time limit": str(spec.max_episode_steps),
        "state": f"[num_envs, {spec.state_dim}]" if spec.state_dim else "not exposed",
        "on device": "yes" if getattr(env, "on_device", True) else "no (gymnasium on the CPU)",
    }
    for method, title in RULES:
        broken = [r.rule for r in report.results if r.status == FAIL]
        if broken and method not in ("spaces", "reset", "step"):
            report.results.append(RuleResult(title, SKIP, f"needs {broken[0]} to hold first"))
            continue
        try:
            detail = getattr(checker, method)(env)
            report.results.append(RuleResult(title, PASS, detail))
        except _Skip as skip:
            report.results.append(RuleResult(title, SKIP, str(skip)))
        except RuleFailure as failure:
            report.results.append(RuleResult(title, FAIL, str(failure)))
        except Exception as exc:  # a crash inside the env is that rule's failure
            report.results.append(RuleResult(title, FAIL, f"raised {type(exc).__name__}: {exc}"))
    if report.ok:
        for size in speed_sizes:
            report.steps_per_second[size] = measure_speed(build, device, size)
    _close(env)
    return report


def print_report(report: CheckReport) -> None:
    """The report as rich tables: facts, one row per rule, throughput."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.width = max(console.width, 120)  # whole lines of detail, even in a pipe
    facts = Table(
        title=f"esper check-env {report.task} (device {report.device})", show_header=False
    )
    for key, value in report.facts.items():
        facts.add_row(key, escape(value))
    console.print(facts)
    rules = Table("rule", "result", "detail")
    style = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
    for r in report.results:
        rules.add_row(escape(r.rule), f"[{style[r.status]}]{r.status}[/]", escape(r.detail))
    console.print(rules)
    if report.steps_per_second:
        speed = Table("num_envs", "env steps / s")
        for size, sps in report.steps_per_second.items():
            speed.add_row(str(size), f"{sps:,.0f}")
        console.print(speed)
    if report.ok:
        console.print(f"[green]{escape(report.task)}: every rule holds[/]")
    else:
        broken = escape(", ".join(report.failed()))
        console.print(f"[bold red]{escape(report.task)}: broken rules: {broken}[/]")
