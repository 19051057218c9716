"""``esper check-env TASK``: a task checked against the batched-environment contract.

Each rule (``esper.envs.rules``) runs on its own; a rule that fails (or
raises) says what is wrong and how to fix it, and the others still run. When
every rule holds, the task's speed is measured at a few batch sizes. The
result is a ``CheckReport``, data only: the ``check-env`` command draws it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from esper.envs.close import close_env
from esper.envs.registry import env_class
from esper.envs.rules import Checker, RuleFailure, RuleSkipped
from esper.envs.speed import measure_speed
from esper.runtime.errors import ConfigError

PASS, FAIL, SKIP = "pass", "FAIL", "skip"

# Each rule: the Checker method that runs it, and its title in the report.
RULES: tuple[tuple[str, str], ...] = (
    ("spaces", "spaces"),
    ("reset", "reset() observation"),
    ("step", "step() tensors"),
    ("auto_reset", 'auto-reset and info["final_obs"]'),
    ("time_limit", "truncation at the time limit"),
    ("determinism", "determinism under a seed"),
    ("save_restore", "state_dict round trip"),
    ("action_mask", "action mask"),
    ("host_sync", "no host sync per step"),
)
# Rules the others build on: once one of them fails, the rest are skipped.
FOUNDATIONS = ("spaces", "reset", "step")
SPEED_SIZES = (1, 64, 1024)


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


def check_env(
    task: str,
    device: torch.device | str = "cpu",
    num_envs: int = 8,
    speed_sizes: Sequence[int] = SPEED_SIZES,
) -> CheckReport:
    """Run every rule over ``task`` (a task name, as ``--task`` takes)."""
    return check_factory(env_class(task), task, device, num_envs, speed_sizes)


def check_factory(
    build: Callable[..., Any],
    task: str,
    device: torch.device | str = "cpu",
    num_envs: int = 8,
    speed_sizes: Sequence[int] = SPEED_SIZES,
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
    report.facts = _facts(env)
    for method, title in RULES:
        report.results.append(_run_rule(checker, method, title, env, report.failed()))
    if report.ok:
        for size in speed_sizes:
            report.steps_per_second[size] = measure_speed(build, device, size)
    close_env(env)
    return report


def check_contract(task: str, device: torch.device | str, num_envs: int = 4) -> None:
    """The cheap rules (spaces, reset and a few steps: shapes, dtypes, device) on a
    few copies of ``task`` of its own, before a run's first batch: a broken task
    fails in one line naming the field, not inside torch during the rollout.
    Raises ConfigError naming the task; ``esper check-env`` runs every rule."""
    device = torch.device(device)
    if device.type == "meta":  # shapes without values (a placement test): check on the CPU
        device = torch.device("cpu")
    checker = Checker(env_class(task), device, num_envs)
    env = checker.make()
    try:
        for method in FOUNDATIONS:
            getattr(checker, method)(env)
    except RuleFailure as failure:
        raise ConfigError(
            "task", f"{task} breaks the environment contract: {failure}{_FULL_CHECK.format(task)}"
        ) from None
    except ConfigError:  # already one line naming what to fix (an agent count, ...)
        raise
    except Exception as exc:  # the env itself raised: say where, keep it to one line
        raise ConfigError(
            "task",
            f"{task} failed its first reset and steps ({type(exc).__name__}: {exc})"
            + _FULL_CHECK.format(task),
        ) from None
    finally:
        close_env(env)


_FULL_CHECK = "; `esper check-env {}` checks every rule"


def _facts(env: Any) -> dict[str, str]:
    """The report's header: what the task is, from its spec."""
    spec = env.spec
    agents = f"{spec.n_agents}, " if spec.is_multi_agent else ""
    return {
        "name": str(spec.name),
        "obs": f"[num_envs, {agents}{spec.obs_dim}] {str(spec.obs_dtype).removeprefix('torch.')}"
        + (f": {spec.describe_obs()} images, flattened" if spec.is_image else "")
        + (f" ({spec.critic_obs_dim} critic-only)" if spec.critic_obs_dim else ""),
        "actions": spec.action_space.describe()
        + (" (masked)" if getattr(spec, "has_action_mask", False) else ""),
        "time limit": str(spec.max_episode_steps),
        **({"agents": f"{spec.n_agents}, one policy for all"} if spec.is_multi_agent else {}),
        "state": f"[num_envs, {spec.state_dim}]" if spec.state_dim else "not exposed",
        "on device": "yes" if getattr(env, "on_device", True) else "no (stepped on the CPU)",
    }


def _run_rule(checker: Checker, method: str, title: str, env: Any, broken: list[str]) -> RuleResult:
    """One rule's outcome; a crash inside the env is that rule's failure."""
    if broken and method not in FOUNDATIONS:
        return RuleResult(title, SKIP, f"needs {broken[0]} to hold first")
    try:
        return RuleResult(title, PASS, getattr(checker, method)(env))
    except RuleSkipped as skip:
        return RuleResult(title, SKIP, str(skip))
    except RuleFailure as failure:
        return RuleResult(title, FAIL, str(failure))
    except Exception as exc:
        return RuleResult(title, FAIL, f"raised {type(exc).__name__}: {exc}")
