"""A trained policy rebuilt from a run's checkpoint: ``esper.load_policy`` and ``esper eval``.

Only what acting needs is restored (the actor-critic and, if the run used one,
its observation normaliser, frozen); the file is loaded with
``weights_only=True`` like every checkpoint, so loading never runs pickled code.
It shares with the trainer only the pieces a checkpoint is made of (the
policy, the normaliser, the checkpoint format), never its loop or state.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from esper.envs import UnknownTaskError
from esper.envs.agents import layout_for, row_spec
from esper.envs.registry import recall_task, task_spec
from esper.envs.spaces import ActionSpace
from esper.runs.directory import RunDir
from esper.runtime.device import resolve_device
from esper.runtime.errors import ConfigError
from esper.training.checkpoint import (
    CheckpointError,
    describe_space,
    fits,
    forget_loaded,
    load_for_resume,
)
from esper.training.policy.actor_critic import ActorCritic, policy_for
from esper.training.policy.deterministic import (
    DeterministicPolicy,
    MaskedDeterministicPolicy,
    StochasticPolicy,
)
from esper.training.policy.normalizer import RunningMeanStd
from esper.workflows.checkpoint_choice import choose_checkpoint, load_best

POLICY_FORMAT = "esper-policy-1"  # TrainedPolicy.save's file: a checkpoint's acting part


@dataclass
class TrainedPolicy:
    """``policy(obs) -> actions``: ``[B, obs_dim]`` in, ``[B]`` or ``[B, act_dim]`` out.

    A single ``[obs_dim]`` observation (a tensor or a NumPy array) gives a single
    action; an image task also takes ``[B, C, H, W]`` or ``[C, H, W]``. Actions
    are on ``device``, clipped to the action bounds as the environment received
    them in training. A task with critic-only entries also takes observations
    without them (``spec.actor_obs_dim`` wide): the actor never reads them.

    A task with an action mask takes ``action_mask`` (``[B, mask_width]`` bool,
    or ``[mask_width]`` with a single observation): the policy then picks only
    allowed actions. Without it, every action is allowed.

    A policy of a task with several agents acts for one agent at a time: give
    that agent's observation (``[B, obs_dim]``, the task's width) and its index,
    ``agent=i``, which appends the agent-id one-hot the policy was trained with
    (``agent_id = true``). Rows that already end with the one-hot (the
    trainer's rows, without their critic-only entries) need no ``agent``.

    A recurrent policy remembers: each call acts from the memory the last call
    left, for the same number of copies. Pass ``episode_start`` (``[B]`` bool,
    True where a copy's episode begins with this observation) to forget there,
    or call ``reset()`` between episodes of a single copy. A call with another
    number of copies is refused (ValueError) unless ``reset()`` came first or
    ``episode_start`` is all True: no copy's memory would carry over.
    """

    model: ActorCritic
    obs_normalizer: RunningMeanStd | None  # frozen: never updated here
    task: str
    obs_dim: int
    action_space: ActionSpace
    device: torch.device
    checkpoint_batch: int
    env_steps: int  # env steps the checkpoint was trained for
    run_id: str
    run_dir: Path
    config: dict[str, Any]  # the run's saved PPOConfig values
    deterministic: bool = True  # argmax / Gaussian mean; False samples like training
    obs_dtype: torch.dtype = torch.float32  # the task's: uint8 images stay uint8
    memory: torch.Tensor | None = None  # a recurrent policy's, after the last call
    masked: bool = False  # the task has an action mask: exports take it as an input
    best: bool = False  # loaded from checkpoints/best.pt (the best evaluation's)
    # A task with several agents and ``agent_id``: the one-hot's width (its agent
    # count), which ``agent=`` appends to one agent's observation; 0 otherwise.
    agent_ids: int = 0
    task_source: str | None = None  # where a register()ed task is imported from

    @property
    def task_options(self) -> dict[str, Any]:
        """The task's own settings the run trained with (its config's ``task_options``)."""
        return dict(self.config.get("task_options") or {})

    @property
    def checkpoint_name(self) -> str:
        """Which checkpoint this is, as a user would ask for it: ``batch 5`` or
        ``best (batch 5)``."""
        batch = f"batch {self.checkpoint_batch}"
        return f"best ({batch})" if self.best else batch

    def reset(self) -> None:
        """Forget: the next call starts every copy's episode afresh."""
        self.memory = None

    @torch.no_grad()
    def __call__(
        self,
        obs: torch.Tensor | np.ndarray,
        episode_start: torch.Tensor | None = None,
        action_mask: torch.Tensor | np.ndarray | None = None,
        agent: int | None = None,
    ) -> torch.Tensor:
        obs = torch.as_tensor(obs, dtype=self.obs_dtype, device=self.device)
        if agent is not None:
            obs = self._with_agent_id(obs, agent)
        shape = self.model.obs_shape
        if len(shape) > 1 and tuple(obs.shape[-len(shape) :]) == shape:
            obs = obs.flatten(-len(shape))  # [..., C, H, W] -> [..., obs_dim]
        single = obs.dim() == 1
        if single:
            obs = obs.unsqueeze(0)  # [1, obs_dim]
        obs = self._normalized(obs)
        starts = None
        if episode_start is not None:
            starts = torch.as_tensor(episode_start, dtype=torch.bool, device=self.device)
        memory = self.model.memory_for(self._memory_of(obs.shape[0], starts), obs.shape[0], starts)
        mask = None if action_mask is None else self._mask(action_mask, obs.shape[0])
        if self.deterministic:
            action, self.memory = self.model.act_deterministic(obs, memory, action_mask=mask)
        else:
            action, self.memory = self.model.sample(obs, memory=memory, action_mask=mask)
        action = self.model.env_action(action)
        return action[0] if single else action

    def _with_agent_id(self, obs: torch.Tensor, agent: int) -> torch.Tensor:
        """One agent's observations with that agent's one-hot id appended."""
        if not self.agent_ids:
            raise ValueError(f"task {self.task}'s policy reads no agent id: call it without agent=")
        if not 0 <= agent < self.agent_ids:
            raise ValueError(f"agent must be in 0..{self.agent_ids - 1} (got {agent})")
        one_hot = torch.zeros(*obs.shape[:-1], self.agent_ids, dtype=obs.dtype, device=obs.device)
        one_hot[..., agent] = 1
        return torch.cat((obs, one_hot), dim=-1)

    def _memory_of(self, copies: int, starts: torch.Tensor | None) -> torch.Tensor | None:
        """The memory this call continues from; a wrong ``episode_start``, or another
        number of copies while some episode runs on, is refused: it has no memory."""
        if starts is not None and starts.numel() != copies:
            raise ValueError(
                f"episode_start has {starts.numel()} entries for {copies} observations; "
                "give one per observation"
            )
        memory = self.memory
        if memory is None or memory.shape[0] == copies:
            return memory
        # host-sync: only when the number of copies changes, never step by step
        if starts is None or not bool(starts.all()):
            raise ValueError(
                f"this recurrent policy remembers {memory.shape[0]} copies and got "
                f"{copies} observations: call reset() first, or pass episode_start all True"
            )
        return None

    def _mask(self, action_mask: torch.Tensor | np.ndarray, rows: int) -> torch.Tensor:
        """``action_mask`` as ``[rows, mask_width]`` bool; a wrong one is refused in a line."""
        mask = torch.as_tensor(action_mask, device=self.device)
        width = self.action_space.mask_width
        if mask.dim() == 1:
            mask = mask.unsqueeze(0)
        if not width:
            raise ValueError(f"task {self.task}'s {self.action_space.describe()} takes no mask")
        if mask.dtype != torch.bool or tuple(mask.shape) != (rows, width):
            raise ValueError(
                f"action_mask must be a bool tensor of shape [{rows}, {width}] "
                f"(got {str(mask.dtype).removeprefix('torch.')} {list(mask.shape)})"
            )
        return mask

    def _normalized(self, obs: torch.Tensor) -> torch.Tensor:
        """``obs`` through the frozen normaliser; observations without their critic-only
        entries (``actor_dim`` wide) through its leading part."""
        normalizer = self.obs_normalizer
        if normalizer is None:
            return obs
        width = obs.shape[-1]
        if width == self.obs_dim:
            return normalizer.normalize(obs)
        if width != self.model.actor_dim:
            raise ValueError(
                f"observations of {width} entries; this policy takes {self.obs_dim} "
                f"(or {self.model.actor_dim} without the critic-only ones)"
            )
        mean = normalizer.mean.to(obs.dtype)[:width]
        std = normalizer.std(obs.dtype)[:width]
        return ((obs - mean) / std).clamp(-normalizer.clip, normalizer.clip)

    def deterministic_module(self) -> DeterministicPolicy:
        """This policy's deterministic action as one plain module, the normaliser
        folded in, on the CPU: what ``esper export`` writes."""
        kind = MaskedDeterministicPolicy if self.masked else DeterministicPolicy
        return kind(self.model, self.obs_normalizer, self.obs_dtype).cpu()

    def stochastic_module(self) -> StochasticPolicy:
        """Its sampling twin, the noise an input: what ``esper export --stochastic`` writes.
        A masked task's sampling file would need the mask as an input too: refused."""
        if self.masked:
            raise ConfigError(
                "stochastic",
                f"task {self.task} masks its actions, which a stochastic file cannot take "
                "yet; export the deterministic policy (it takes the mask)",
            )
        return StochasticPolicy(self.model, self.obs_normalizer, self.obs_dtype).cpu()

    def save(self, path: Path | str, *, overwrite: bool = False) -> Path:
        """This policy and its normaliser as one file, for ``esper.load(path)``
        anywhere (no run dir needed). Python and esper load it, ``weights_only``;
        ``esper export`` writes a file that needs neither. An existing file is
        replaced only with ``overwrite``."""
        path = Path(path)
        if path.exists() and not overwrite:
            raise ConfigError("path", f"{path} exists; pass overwrite=True to replace it")
        if not path.parent.is_dir():
            raise ConfigError("path", f"{path.parent} is not a directory")
        normalizer = self.obs_normalizer
        payload = {
            "format": POLICY_FORMAT,
            "config": self.config,
            "task_source": self.task_source,
            "obs_dim": self.obs_dim,
            "action_space": describe_space(self.action_space),
            "policy": {k: v.cpu() for k, v in self.model.state_dict().items()},
            "obs_normalizer": None
            if normalizer is None
            else {k: v.cpu() for k, v in normalizer.state_dict().items()},
            "batch": self.checkpoint_batch,
            "env_steps": self.env_steps,
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
        }
        tmp = path.with_name(f".{path.name}.tmp")
        torch.save(payload, tmp)
        tmp.replace(path)  # never half a file
        return path


def load_policy(
    run_dir: Path | str,
    checkpoint: int | str | None = None,
    device: torch.device | str = "cpu",
    *,
    deterministic: bool = True,
) -> TrainedPolicy:
    """The policy saved after batch ``checkpoint`` (the newest when None; ``"best"``:
    the best evaluation's, checkpoints/best.pt) of ``run_dir``."""
    run = RunDir(Path(run_dir))
    if checkpoint == "best":
        saved, path = load_best(run)
    else:
        if isinstance(checkpoint, str):
            raise ConfigError("checkpoint", f"must be a batch number or best (got {checkpoint!r})")
        batch = choose_checkpoint(run, checkpoint)
        path = run.checkpoints()[batch]
        saved = load_for_resume(run.checkpoints(), batch, setting="checkpoint")
    forget_loaded()  # what acting needs is rebuilt from ``saved``: keep no second copy
    target = resolve_device(str(device))
    best = checkpoint == "best"
    return _rebuild_or_say_why(saved, run, target, deterministic, path, "RUN_DIR", best=best)


def _rebuild_or_say_why(
    saved: dict[str, Any],
    run: RunDir,
    device: torch.device,
    deterministic: bool,
    path: Path,
    where: str,
    *,
    best: bool = False,
) -> TrainedPolicy:
    """``_rebuild``, its failures one line naming ``path`` (given as ``where``)."""
    try:
        return _rebuild(saved, run, device, deterministic, best=best)
    except CheckpointError:
        raise
    except UnknownTaskError as exc:  # the run's task, from its checkpoint: not a flag of eval
        raise ConfigError(
            where,
            f"{path} was trained on task {exc.task!r}, which cannot be rebuilt here: "
            f"{exc.message.removeprefix(f'unknown task {exc.task!r} ')}; make it importable "
            "(run from the folder it was trained in, or install its package)",
        ) from None
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"checkpoint {path} does not hold a policy esper can rebuild "
            f"({type(exc).__name__}: {exc})",
            setting="checkpoint" if where == "RUN_DIR" else where,
        ) from None


def load(
    path: Path | str, device: torch.device | str = "cpu", *, deterministic: bool = True
) -> TrainedPolicy:
    """A policy ``TrainedPolicy.save`` wrote: ``esper.load("policy.pt")``, outside
    any run dir. Loaded with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("path", f"{path} is not a file")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is not an esper policy file ({type(exc).__name__}); write one with "
            "esper.load_policy(RUN_DIR).save(PATH)",
            setting="path",
        ) from None
    if not isinstance(saved, dict) or saved.get("format") != POLICY_FORMAT:
        raise CheckpointError(
            f"{path} is not an esper policy file: a run's checkpoint loads with "
            "esper.load_policy(RUN_DIR, checkpoint=N)",
            setting="path",
        )
    target = resolve_device(str(device))
    run = RunDir(Path(str(saved.get("run_dir", path.parent))))
    return _rebuild_or_say_why(saved, run, target, deterministic, path, "path")


def _rebuild(
    saved: dict[str, Any],
    run: RunDir,
    device: torch.device,
    deterministic: bool,
    *,
    best: bool = False,
) -> TrainedPolicy:
    config = saved["config"]
    task = config["task"]
    recall_task(task, saved.get("task_source"))
    the_task = task_spec(task, config.get("task_options"))
    spec = row_spec(the_task, config)  # one agent's row, as the policy saw it
    if not fits(saved, spec.obs_dim, spec.action_space):
        raise CheckpointError(
            f"batch {saved['batch']}'s checkpoint in {run.path} has other observation or "
            f"action shapes than task {task} has now",
            setting="checkpoint",
        )
    model = policy_for(config, spec)  # the saved settings: encoder, layers, activation
    model.load_state_dict(saved["policy"])
    model.to(device).eval().requires_grad_(False)
    normalizer = None
    if saved["obs_normalizer"] is not None:
        normalizer = RunningMeanStd((spec.obs_dim,))
        normalizer.load_state_dict(saved["obs_normalizer"])
        normalizer.to(device)
    return TrainedPolicy(
        model=model,
        obs_normalizer=normalizer,
        task=task,
        obs_dim=spec.obs_dim,
        action_space=spec.action_space,
        device=device,
        checkpoint_batch=int(saved["batch"]),
        env_steps=int(saved["env_steps"]),
        run_id=str(saved["run_id"]),
        run_dir=run.path,
        config=dict(config),
        deterministic=deterministic,
        obs_dtype=spec.obs_dtype,
        masked=spec.has_action_mask,
        agent_ids=layout_for(the_task, config).id_dim,
        best=best,
        task_source=saved.get("task_source"),
    )
