"""The one table of telemetry fields: every BATCH_COMPLETED statistic declared once.

Each row says what a field is (type, unit, range, meaning), where its value is
made (on the device, crossing to the host in the batch's one transfer, or on
the host), how several ranks combine it, and how each consumer shows it: its
CleanRL TensorBoard tag, its console format, its Sanctum health thresholds.
The payload's validation (``events.py``), the packing of the batch's device
statistics (``training/transfer.py``), the console and
TensorBoard sinks, Sanctum's health colours, the event table of
``docs/reading-telemetry.md`` and ``docs/telemetry.md`` are all read from here, so a
field is added in one place.
"""

from __future__ import annotations

import math
from typing import Any

from esper.telemetry.field import Absent, Field, Reduction, Source, Threshold

_UPDATE_NOTE = "mean over every minibatch step of the batch's update epochs"

BATCH_COMPLETED_FIELDS: tuple[Field, ...] = (
    Field(
        "TELE-100", "env_steps", "Environment steps", int, "env steps",
        "Environment steps taken so far, counting those before a resume: the x-axis of "
        "every curve (TensorBoard's global step).",
        low=0, reduction=Reduction.SUM, console="steps {:,}", sanctum="env_steps",
    ),
    Field(
        "TELE-101", "sps", "Steps per second", float, "env steps / s",
        "Environment steps per second of wall time over this batch (rollout, update "
        "and bookkeeping).",
        low=0, reduction=Reduction.SUM, tensorboard="charts/SPS", console="{:,.0f} sps",
        sanctum="throughput.sps",
    ),
    Field(
        "TELE-102", "batch_seconds", "Batch seconds", float, "s",
        "Wall time of this batch.",
        low=0, reduction=Reduction.MAX,
    ),
    Field(
        "TELE-103", "episodes_finished", "Episodes finished", int, "episodes",
        "Episodes that ended (terminated or truncated) during this batch; with several "
        "agents, a copy's episode counts once, not once per agent.",
        low=0, source=Source.DEVICE, reduction=Reduction.SUM, console="{:d} eps",
        sanctum="returns.episodes_finished",
    ),
    Field(
        "TELE-104", "episode_return_mean", "Episode return (mean)", float, "return",
        "Mean undiscounted return of the episodes that ended in this batch; with several "
        "agents, the team return: each episode's mean over the agents of their returns "
        "(the shared return, when the task pays one team reward).",
        absent=Absent.NO_EPISODE, source=Source.DEVICE, reduction=Reduction.WEIGHTED,
        tensorboard="charts/episodic_return", console="return {:.1f}", sanctum="returns.mean",
    ),
    Field(
        "TELE-105", "episode_return_min", "Episode return (min)", float, "return",
        "Lowest return of the episodes that ended in this batch.",
        absent=Absent.NO_EPISODE, source=Source.DEVICE, reduction=Reduction.MIN,
        console="min {:.0f}", sanctum="returns.min",
    ),
    Field(
        "TELE-106", "episode_return_max", "Episode return (max)", float, "return",
        "Highest return of the episodes that ended in this batch.",
        absent=Absent.NO_EPISODE, source=Source.DEVICE, reduction=Reduction.MAX,
        console="max {:.0f}", sanctum="returns.max",
    ),
    Field(
        "TELE-107", "episode_length_mean", "Episode length (mean)", float, "env steps",
        "Mean length of the episodes that ended in this batch.",
        low=1, absent=Absent.NO_EPISODE, source=Source.DEVICE, reduction=Reduction.WEIGHTED,
        tensorboard="charts/episodic_length", sanctum="returns.length_mean",
    ),
    Field(
        "TELE-108", "policy_loss", "Policy loss", float, "loss",
        f"Clipped surrogate policy loss, {_UPDATE_NOTE}.",
        nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/policy_loss", health=Threshold("PLoss"), sanctum="ppo.policy_loss",
    ),
    Field(
        "TELE-109", "value_loss", "Value loss", float, "loss",
        f"Value-function loss (0.5 x squared error, clipped if configured), {_UPDATE_NOTE}.",
        low=0, nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/value_loss", health=Threshold("VLoss"), sanctum="ppo.value_loss",
    ),
    Field(
        "TELE-110", "entropy", "Policy entropy", float, "nats",
        f"Entropy of the policy's action distribution, {_UPDATE_NOTE}; low means the "
        "policy has stopped exploring.",
        range_note="a continuous policy's differential entropy can be negative",
        nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/entropy", sanctum="ppo.entropy",
        health=Threshold(
            "Entropy", "entropy collapsed", warn=0.1, critical=0.01, high_is_bad=False
        ),
    ),
    Field(
        "TELE-111", "approx_kl", "Approximate KL", float, "nats",
        f"KL(old policy ‖ new policy) by the (ratio - 1) - log ratio estimator, {_UPDATE_NOTE}.",
        range_note="≥ 0 in exact arithmetic; float rounding can put it a hair below, "
        "so no bound is enforced",
        nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/approx_kl", console="kl {:.4f}", sanctum="ppo.approx_kl",
        health=Threshold("KL", "KL too high", warn=0.02, critical=0.05),
    ),
    Field(
        "TELE-112", "clip_fraction", "Clip fraction", float, "fraction",
        f"Share of samples whose probability ratio left [1 - clip, 1 + clip], {_UPDATE_NOTE}.",
        low=0, high=1, nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/clipfrac", console="clip {:.2f}", sanctum="ppo.clip_fraction",
        health=Threshold("Clip", "clip fraction high", warn=0.3, critical=0.5),
    ),
    Field(
        "TELE-113", "explained_variance", "Explained variance", float, "fraction",
        "1 - Var[returns - values] / Var[returns] over the batch, before the update: how "
        "much of the returns' spread the value function predicts. NaN when the returns "
        "are constant. Across ranks the mean of each rank's value, an approximation.",
        high=1, nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/explained_variance", console="ev {:.2f}",
        sanctum="ppo.explained_variance",
        health=Threshold(
            "EV", "explained variance negative", warn=0.0, critical=-0.5, high_is_bad=False
        ),
    ),
    Field(
        "TELE-114", "learning_rate", "Learning rate", float, "step size",
        "Adam's learning rate in this batch's update: the schedule's value for the batch "
        "(linear or constant, set on the host), or with lr_schedule = adaptive the rate the "
        "minibatch steps left on the device at the batch's end. The same on every rank.",
        low=0, source=Source.DEVICE, tensorboard="charts/learning_rate", console="lr {:.2e}",
        sanctum="ppo.learning_rate",
    ),
    Field(
        "TELE-115", "grad_norm", "Gradient norm", float, "L2 norm",
        f"Global gradient norm before clipping, {_UPDATE_NOTE}. esper's own: CleanRL does "
        "not log it.",
        low=0, nan_allowed=True, source=Source.DEVICE, reduction=Reduction.MEAN,
        tensorboard="losses/grad_norm", health=Threshold("Grad"), sanctum="ppo.grad_norm",
    ),
    Field(
        "TELE-116", "rollout_seconds", "Rollout seconds", float, "s",
        "Wall time of the rollout and advantage computation in this batch.",
        low=0, default=0.0, required=False, reduction=Reduction.MAX,
        sanctum="throughput.rollout_share",
    ),
    Field(
        "TELE-117", "update_seconds", "Update seconds", float, "s",
        "Wall time of the PPO update in this batch.",
        low=0, default=0.0, required=False, reduction=Reduction.MAX,
        sanctum="throughput.update_share",
    ),
    Field(
        "TELE-118", "process_memory_mb", "Process memory", float, "MB",
        "Peak resident memory of the trainer process (with several ranks, the largest).",
        low=0, absent=Absent.UNAVAILABLE, required=False, reduction=Reduction.MAX,
        sanctum="throughput.process_memory_mb",
    ),
    Field(
        "TELE-119", "cuda_memory_mb", "CUDA memory", float, "MB",
        "Memory allocated on the CUDA device (with several ranks, the largest); None off CUDA.",
        low=0, absent=Absent.UNAVAILABLE, required=False, reduction=Reduction.MAX,
        sanctum="throughput.cuda_memory_mb",
    ),
    Field(
        "TELE-120", "task_statistics", "Task statistics", dict, "the task's own",
        "The statistics the task declares (BatchedEnv.statistics), by name: numbers its "
        "environments made on the device over this batch, carried in the batch's one host "
        "transfer (across ranks a count is summed and a mean weighted by its own "
        "denominator: TaskStatistic.kind); null for a statistic with nothing "
        "to report this batch. Each built-in task's are recorded after this table.",
        default={}, required=False, reduction=Reduction.BY_KIND,
        sanctum="task_stats.statistics",
    ),
)  # fmt: skip

TRAINING_STARTED_FIELDS: tuple[Field, ...] = (
    Field(
        "TELE-012", "n_envs", "Environments", int, "environments",
        "Environments stepped in parallel (--envs).",
        low=1, sanctum="n_envs",
    ),
    Field(
        "TELE-013", "max_epochs", "Horizon", int, "env steps per env",
        "Environment steps per environment in one batch (--max-epochs): the rollout horizon.",
        low=1, sanctum="horizon",
    ),
    Field(
        "TELE-014", "max_batches", "Max batches", int, "batches",
        "The batch count the run ends at: --episodes + --start-episode, fixed when training "
        "starts, so a resume from 25 with --episodes 50 runs to 75. The denominator of "
        "every progress display.",
        low=1, sanctum="max_batches",
    ),
    Field(
        "TELE-015", "start_batch", "Start batch", int, "batches",
        "Batches completed before this invocation (--start-episode; 0 for a fresh run). "
        "A TRAINING_STARTED with start_batch K supersedes every earlier event of a batch "
        "after K.",
        low=0, range_note="below max_batches", sanctum="start_batch",
    ),
    Field("TELE-016", "task", "Task", str, "name", "The task trained.", sanctum="task"),
    Field(
        "TELE-017", "device", "Device", str, "torch device",
        "The device the environments and policy live on.",
        sanctum="device",
    ),
    Field("TELE-018", "seed", "Seed", int, "seed", "The run's seed.", sanctum="seed"),
    Field(
        "TELE-019", "policy_params", "Policy parameters", int, "parameters",
        "Trainable parameters of the actor-critic.",
        low=1,
    ),
    Field(
        "TELE-020", "config", "Config", dict, "PPOConfig fields",
        "Every PPOConfig field of the run, as a dict.",
        default={}, required=False,
    ),
    Field(
        "TELE-021", "env_steps", "Environment steps at start", int, "env steps",
        "Environment steps taken before this invocation (a resume continues the axis).",
        low=0, default=0, required=False, sanctum="env_steps",
    ),
    Field(
        "TELE-022", "world_size", "World size", int, "ranks",
        "Processes (ranks) training together under torchrun; 1 for plain `esper ppo`. "
        "Each rank steps n_envs / world_size environments.",
        low=1, default=1, required=False, sanctum="world_size",
    ),
    Field(
        "TELE-023", "env_device_counts", "Environments per device", dict, "environments",
        "Environments on each device, e.g. {\"cuda:0\": 512, \"cuda:1\": 512}; "
        "node-qualified (node1/cuda:0) over several machines. The counts sum to n_envs.",
        default={}, required=False, sanctum="device",
    ),
    Field(
        "TELE-024", "torch_threads", "Torch threads", int, "threads",
        "torch's intra-op CPU threads when training started: under `esper` the usable CPUs "
        "(affinity capped by the cgroup quota) // the esper trainers running on them, "
        "unless OMP_NUM_THREADS chose; esper.train() reports the process's setting as found. "
        "None in a record written before the field existed.",
        low=1, absent=Absent.UNAVAILABLE, default=None, required=False,
    ),
    Field(
        "TELE-025", "task_facts", "Task facts", dict, "the task's own",
        "Numbers and names the task knows when the run begins (BatchedEnv.start_facts), "
        "e.g. a growth task's host_params and param_budget; {} for most tasks.",
        default={}, required=False, sanctum="task_stats.facts",
    ),
    Field(
        "TELE-026", "n_agents", "Agents", int, "agents",
        "Agents acting in each copy of the task, every one a row of the batch that one "
        "shared policy acts for (docs/many-agents.md); 1 for a single-agent task.",
        low=1, default=1, required=False, sanctum="n_agents",
    ),
    Field(
        "TELE-027", "critic", "Critic", str, "kind",
        "What the critic reads: local (each agent's own observation; IPPO with several "
        "agents) or central (also the copy's global state; MAPPO).",
        default="local", required=False, sanctum="critic",
    ),
)  # fmt: skip

_EVAL_NOTE = "of the evaluation's complete episodes"
_OPTIONAL = {"absent": Absent.OUTSIDE_TRAINING, "required": False}

EVALUATION_COMPLETED_FIELDS: tuple[Field, ...] = (
    Field(
        "TELE-200", "checkpoint_batch", "Evaluated batch", int, "batches",
        "The batch whose policy was evaluated: a checkpoint's (esper eval) or the batch "
        "just completed (evaluation while training).",
        low=0,
    ),
    Field(
        "TELE-201", "episodes", "Evaluation episodes", int, "episodes",
        "Complete episodes the evaluation ran (--eval-episodes, esper eval --episodes).",
        low=1,
    ),
    Field(
        "TELE-202", "deterministic", "Deterministic", bool, "flag",
        "True: the most likely action was taken; False: actions were sampled.",
    ),
    Field("TELE-203", "return_mean", "Evaluation return (mean)", float, "return",
          f"Mean return {_EVAL_NOTE}.", console="return {:.1f}", tensorboard="eval/mean_reward",
          sanctum="evaluation.return_mean"),
    Field("TELE-204", "return_std", "Evaluation return (std)", float, "return",
          f"Population standard deviation of the return {_EVAL_NOTE}.", low=0,
          tensorboard="eval/std_reward",
          sanctum="evaluation.return_std"),
    Field("TELE-205", "return_min", "Evaluation return (min)", float, "return",
          f"Lowest return {_EVAL_NOTE}."),
    Field("TELE-206", "return_max", "Evaluation return (max)", float, "return",
          f"Highest return {_EVAL_NOTE}."),
    Field("TELE-207", "length_mean", "Evaluation length (mean)", float, "env steps",
          f"Mean length {_EVAL_NOTE}.", low=1, tensorboard="eval/mean_ep_length"),
    Field("TELE-208", "seed", "Evaluation seed", int, "seed",
          "Seed of the evaluation's environments (while training: from the run's seed "
          "and the batch, so a resume re-evaluates identically)."),
    Field("TELE-209", "env_steps", "Environment steps", int, "env steps",
          "Environment steps the evaluated policy was trained for: the x-axis of the "
          "evaluation points.", low=0, **_OPTIONAL),
    Field("TELE-210", "length_min", "Evaluation length (min)", float, "env steps",
          f"Shortest episode {_EVAL_NOTE}.", low=1, **_OPTIONAL),
    Field("TELE-211", "length_max", "Evaluation length (max)", float, "env steps",
          f"Longest episode {_EVAL_NOTE}.", low=1, **_OPTIONAL),
    Field("TELE-212", "during_training", "During training", bool, "flag",
          "True for an evaluation the trainer ran (--eval-every); False for esper eval.",
          default=False, required=False),
    Field("TELE-213", "best_return_mean", "Best evaluation return", float, "return",
          "The highest mean return of the run's evaluations while training so far, this "
          "one included: the return of checkpoints/best.pt.",
          sanctum="evaluation.best_return_mean", **_OPTIONAL),
    Field("TELE-214", "scripted", "Scripted policy", str, "name",
          "The task's scripted policy that played the episodes (esper eval --scripted "
          "NAME), so a baseline's record is told from a trained policy's.",
          absent=Absent.LEARNED, default=None, required=False),
    Field("TELE-215", "episode_statistics", "Episode statistics", dict, "the task's own",
          "The episode statistics the task declares (BatchedEnv.episode_statistics), by "
          "name: each the mean over the evaluation's episodes of the value at the "
          "episode's end (a growth task's final score, accuracy and parameters); {} for "
          "most tasks. Each built-in task's are recorded after this table.",
          default={}, required=False),
)  # fmt: skip

BATCH_FIELDS: dict[str, Field] = {f.name: f for f in BATCH_COMPLETED_FIELDS}
# Names a task statistic may not take: the trainer's own metrics, which share
# TensorBoard, W&B, the plots and Sanctum with it.
TRAINER_METRIC_NAMES: frozenset[str] = frozenset(BATCH_FIELDS)
TASK_TAG_PREFIX = "task/"  # TensorBoard's and W&B's group of the task statistics


def console_parts(payload: Any) -> list[str]:
    """The console line's parts for a BATCH_COMPLETED payload, in table order."""
    parts = []
    for f in BATCH_COMPLETED_FIELDS:
        if f.console is None:
            continue
        value = getattr(payload, f.name)
        if value is None:
            parts.append(f.console.split("{")[0] + "-")
        elif isinstance(value, float) and not math.isfinite(value):
            parts.append(f.console.split("{")[0] + str(value))
        else:
            parts.append(f.console.format(value))
    return parts


TENSORBOARD_TAGS: dict[str, str] = {
    f.tensorboard: f.name for f in BATCH_COMPLETED_FIELDS if f.tensorboard is not None
}
# An evaluation while training, under Stable-Baselines3's EvalCallback names.
EVAL_TENSORBOARD_TAGS: dict[str, str] = {
    f.tensorboard: f.name for f in EVALUATION_COMPLETED_FIELDS if f.tensorboard is not None
}
# A ``video_every`` video: a W&B video, and in TensorBoard (which plays no MP4) its path.
VIDEO_TAG = "videos/episode"
HEALTH_THRESHOLDS: dict[str, Threshold] = {
    f.name: f.health for f in BATCH_COMPLETED_FIELDS if f.health is not None
}


def task_scalars(payload: Any) -> dict[str, float]:
    """A BATCH_COMPLETED's task statistics as TensorBoard/W&B scalars
    (``task/NAME``); one with nothing to report this batch is left out."""
    return {
        TASK_TAG_PREFIX + name: value
        for name, value in payload.task_statistics.items()
        if value is not None
    }
