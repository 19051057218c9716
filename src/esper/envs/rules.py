"""The batched-environment contract as rules, each a method of ``Checker``.

A rule returns a line saying what it saw, or raises ``RuleFailure`` saying
what is wrong and how to fix it (``RuleSkipped`` when the env declares it
cannot do what the rule needs). The contract is ARCHITECTURE.md's: obs
``[num_envs, obs_dim]`` float32, reward ``[num_envs]`` float32, flags
``[num_envs]`` bool (a multi-agent task's obs ``[num_envs, n_agents,
obs_dim]`` and reward ``[num_envs, n_agents]``, its flags per copy), every
tensor on the env's device, finished copies reset themselves and leave their
last observation in ``info["final_obs"]``, the time limit truncates, a seed
reproduces the episodes, ``state_dict`` round-trips, and a step never reads a
tensor on the host. A task with an action mask keeps ``action_mask``
``[num_envs, mask_width]`` bool (per agent with several), allowing an action
of every head in every state, and never stale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from esper.envs.close import close_env
from esper.envs.random_actions import action_sequence, allowed_actions, random_actions
from esper.envs.spaces import ActionSpace, MultiDiscreteSpace
from esper.runtime.host_sync import HostSyncError, host_reads_forbidden

# What a failed replay says, with {name} (the diverging tensor) and {step} filled in.
NOT_DETERMINISTIC = (
    "same seed and actions, different {name} at step {step}: draw every "
    "random number from self.generator"
)
NOT_RESTORED = (
    "after load_state_dict the {name} differs at step {step}: state_dict "
    "must hold every tensor the dynamics read (and the generator's state)"
)


class RuleFailure(Exception):
    """A broken rule: the message says what is wrong and how to fix it."""


class RuleSkipped(Exception):
    """A rule that does not apply to this env: the message says why."""


def _expect(ok: bool, message: str) -> None:
    if not ok:
        raise RuleFailure(message)


def _check_tensor(
    name: str,
    value: Any,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    dtype_fix: str = "",
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
        f"{name} is {value.dtype}, want {dtype}: {dtype_fix or f'convert with .to({dtype})'}",
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
    rows = _rows(env)
    _check_tensor("obs", obs, (*rows, env.obs_dim), _obs_dtype(env), device)
    _check_tensor("reward", reward, rows, torch.float32, device)
    _check_tensor("terminated", terminated, (n,), torch.bool, device)
    _check_tensor("truncated", truncated, (n,), torch.bool, device)
    _expect(
        isinstance(info, dict) and "final_obs" in info,
        'info has no "final_obs": return the observation each copy reached before any '
        "reset (BatchedEnv.step does this for you)",
    )
    final_obs = info["final_obs"]
    _check_tensor('info["final_obs"]', final_obs, (*rows, env.obs_dim), _obs_dtype(env), device)
    _expect(bool(torch.isfinite(obs).all()), "obs holds NaN or inf")
    _expect(bool(torch.isfinite(reward).all()), "reward holds NaN or inf")


def _check_dynamics(env: Any, actions: torch.Tensor) -> None:
    """A ``BatchedEnv``'s own pieces, before ``step`` combines them: ``initial_state``
    and ``dynamics`` must return the state's dtype and a bool ``terminated``, or
    ``step`` fails inside torch (``where``, ``|``) with an error that names neither.
    The generator is put back, so the env's episodes are not disturbed."""
    state = getattr(env, "state", None)
    if not (isinstance(state, torch.Tensor) and hasattr(env, "dynamics")) or not state.shape[1]:
        return  # not a BatchedEnv, or no state exposed (grow-mlp): step() is all there is
    n, device = env.num_envs, env.device
    generator = getattr(env, "generator", None)
    saved = generator.get_state() if generator is not None else None
    try:
        fresh = env.initial_state(n)
        out = env.dynamics(state.clone(), actions.to(device))
    finally:
        if saved is not None:
            generator.set_state(saved)
    shape, dtype = tuple(state.shape), state.dtype
    fix = f"the state is {dtype}: make states with dtype=self.dtype"
    _check_tensor("initial_state()", fresh, shape, dtype, device, fix)
    _expect(
        isinstance(out, tuple) and len(out) == 3,
        "dynamics() must return (next_state, reward, terminated)",
    )
    next_state, reward, terminated = out
    _check_tensor("dynamics() next_state", next_state, shape, dtype, device, fix)
    _expect(
        isinstance(reward, torch.Tensor) and reward.dtype.is_floating_point,
        f"dynamics() reward is {getattr(reward, 'dtype', type(reward).__name__)}, want a "
        "float tensor: convert with .to(torch.float32)",
    )
    _check_tensor(
        "dynamics() terminated",
        terminated,
        (n,),
        torch.bool,
        device,
        "a comparison gives one (e.g. x.abs() > limit); or convert with .bool()",
    )


def _rows(env: Any) -> tuple[int, ...]:
    """``(num_envs,)``, or ``(num_envs, n_agents)`` for a multi-agent task: the
    leading shape of its observations and rewards."""
    return (env.num_envs, *env.spec.agent_shape)


def _obs_dtype(env: Any) -> torch.dtype:
    """What the spec declares observations are: float32, or uint8 for images."""
    spec = getattr(env, "spec", None)
    return getattr(spec, "obs_dtype", torch.float32)


def _skip_unless(env: Any, capability: str, why: str) -> None:
    """Skip a rule that needs ``capability`` (a flag environments declare, True
    unless they say otherwise) on an environment that lacks it."""
    if not getattr(env, capability, True):
        raise RuleSkipped(f"{why} ({capability} = False)")


def _expect_same_steps(first: Any, second: Any, actions: list[torch.Tensor], fix: str) -> None:
    """Step both envs with ``actions``; ``fix`` (with ``{name}`` and ``{step}``) if they part."""
    for t, a in enumerate(actions):
        x, y = first.step(a), second.step(a)
        for name, u, v in zip(("obs", "reward", "terminated", "truncated"), x, y, strict=False):
            _expect(torch.equal(u, v), fix.format(name=name, step=t + 1))


def _check_mask(env: Any, mask: Any, where: str) -> None:
    """``mask`` is a bool ``[num_envs, mask_width]`` (``[num_envs, n_agents,
    mask_width]`` with several agents) on the env's device that allows at least
    one action of every head of every copy (and agent)."""
    width = env.action_space.mask_width
    _check_tensor(
        where, mask, (*_rows(env), width), torch.bool, env.device, "build it with a comparison"
    )
    space = env.action_space
    heads = space.nvec if isinstance(space, MultiDiscreteSpace) else (width,)
    empty = torch.stack([~block.any(dim=-1) for block in mask.split(heads, dim=-1)], dim=-1)
    stuck = int(empty.reshape(env.num_envs, -1).any(dim=1).sum())
    _expect(
        stuck == 0,
        f"{where} allows no action in {stuck} of {env.num_envs} copies: every state must "
        "allow at least one action (of every head): the task's legal_actions has a bug",
    )


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
        dtype = _obs_dtype(env)
        shape = (*_rows(env), env.obs_dim)
        _check_tensor("reset() obs", obs, shape, dtype, env.device)
        kind = str(dtype).removeprefix("torch.")
        return f"[{', '.join(map(str, shape))}] {kind} on {env.device}"

    def step(self, env: Any) -> str:
        env.reset(seed=0)
        generator = torch.Generator().manual_seed(1)
        for _ in range(3):
            actions = _legal_actions(env, generator)
            _check_dynamics(env, actions)
            _check_step(env, env.step(actions))
        return "obs, reward, terminated, truncated, final_obs: shapes, dtypes, device"

    def auto_reset(self, env: Any) -> str:
        before = env.reset(seed=0)
        limit = (env.spec.max_episode_steps or 1000) + 1
        finished = reset_visibly = 0  # finished copies; those whose obs the reset changed
        for actions in action_sequence(env, limit, seed=2):
            obs, _, terminated, truncated, info = env.step(actions)
            done = terminated | truncated
            same = (info["final_obs"] == obs).flatten(1).all(dim=1)
            # A reset that changed what a copy shows (obs differs from the step
            # before) must leave final_obs apart from obs, unless the copy ended
            # exactly where it restarts: over every finished copy, that never holds.
            reset_visibly += int((done & ~(obs == before).flatten(1).all(dim=1)).sum())
            before = obs.clone()
            _expect(
                bool(same[~done].all()),
                'info["final_obs"] differs from obs for copies that did not finish: '
                "it must be the observation each copy reached, equal to obs unless it reset",
            )
            finished += int(done.sum())
            if finished and bool((same[done] == False).any()):  # noqa: E712
                return f"{finished} finished copies reset; final_obs kept their last observation"
        _expect(finished > 0, f"no copy finished within {limit} random steps")
        _expect(
            reset_visibly == 0,
            f'info["final_obs"] equalled the observation after the reset for all {finished} '
            "finished copies: it must hold the observation each copy reached before it reset "
            "(take it before resetting; BatchedEnv.step does this for you)",
        )
        # every finished copy's final_obs equalled its fresh obs: allowed, but unusual
        return f"{finished} finished copies; their final_obs equalled the fresh obs"

    def time_limit(self, env: Any) -> str:
        limit = env.spec.max_episode_steps
        if limit is None:
            raise RuleSkipped("the task has no time limit")
        env.reset(seed=0)
        age = torch.zeros(env.num_envs, dtype=torch.int64, device=env.device)
        truncations = 0
        for actions in action_sequence(env, limit + 1, seed=3):
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
            _expect_same_steps(first, second, action_sequence(first, 50, seed=4), NOT_DETERMINISTIC)
        finally:
            close_env(first, second)
        return "same seed, same actions: identical 50 steps"

    def save_restore(self, env: Any) -> str:
        _skip_unless(env, "restorable", "this environment cannot save its episodes")
        env.reset(seed=0)
        actions = action_sequence(env, 40, seed=5)
        for a in actions[:20]:
            env.step(a)
        saved = env.state_dict()
        restored = self.make(seed=99)
        try:
            restored.reset(seed=99)
            restored.load_state_dict(saved)
            _expect_same_steps(env, restored, actions[20:], NOT_RESTORED)
        finally:
            close_env(restored)
        return "20 steps, save, load into a fresh env: the next 20 steps identical"

    def action_mask(self, env: Any) -> str:
        if not getattr(env.spec, "has_action_mask", False):
            raise RuleSkipped("the task declares no action mask")
        env.reset(seed=0)
        _check_mask(env, env.action_mask, "action_mask after reset()")
        generator = torch.Generator().manual_seed(8)
        legal = getattr(env, "legal_actions", None)
        steps = (env.spec.max_episode_steps or 100) + 1
        for t in range(1, steps + 1):
            actions = allowed_actions(env, env.action_mask, generator)
            _, _, _, _, info = env.step(actions)
            _expect("action_mask" in info, 'info has no "action_mask": return env.action_mask')
            _check_mask(env, info["action_mask"], f'info["action_mask"] at step {t}')
            _expect(
                torch.equal(info["action_mask"], env.action_mask),
                f'info["action_mask"] differs from env.action_mask at step {t}: both are '
                "the mask of the observation step() returns",
            )
            if legal is not None and env.spec.state_dim:  # a task that exposes its state
                stale = int((legal(env.state) != env.action_mask).flatten(1).any(dim=1).sum())
                _expect(
                    stale == 0,
                    f"at step {t} the mask of {stale} copies is not legal_actions(state): a "
                    "policy would sample actions the state forbids; update action_mask in "
                    "place after the auto-reset (BatchedEnv.step does this for you)",
                )
        shape = ", ".join(map(str, (*_rows(env), env.action_space.mask_width)))
        return f"[{shape}] bool; {steps} steps of allowed actions"

    def host_sync(self, env: Any) -> str:
        _skip_unless(env, "on_device", "steps on the CPU: crossing to the host is its design")
        env.reset(seed=0)
        actions = action_sequence(env, 20, seed=6)
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


def _legal_actions(env: Any, generator: torch.Generator) -> torch.Tensor:
    """Random actions the task allows now: a masked task is never sent a forbidden
    one (its step may rightly refuse it); others draw as ``action_sequence`` does,
    and so does a task whose mask is malformed (the "action mask" rule names it)."""
    masked = getattr(env.spec, "has_action_mask", False)
    mask = getattr(env, "action_mask", None) if masked else None
    well_formed = isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
    if well_formed and tuple(mask.shape) == (*_rows(env), env.spec.mask_width):
        return allowed_actions(env, mask, generator)
    return random_actions(env, generator)
