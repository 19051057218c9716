"""The one validated, frozen description of a training run.

A run's values come in layers, lowest first: the dataclass defaults below,
the task's packaged defaults, the user's config file, then explicit overrides
(``esper.config.layers`` stacks them; this module knows no task). Every TOML
key must name a field here (``esper.config.text`` reads files and ``--set``
pairs strictly against them).

Each field that is also a command-line flag carries its flag, help and lower
bound in its metadata (``knob``): the CLI is generated from them, and errors
here name the setting (the field), which only the CLI translates into a flag.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from esper.runtime.errors import ConfigError


def knob(
    default: Any,
    help: str = "",
    *,
    flag: str | None = None,
    minimum: int | None = None,
    default_text: str | None = None,
) -> Any:
    """A field with what the CLI and validation need to know about it.

    ``flag`` makes it an ``esper ppo`` option; ``minimum`` is checked on every
    config (``None`` is allowed for optional fields); ``default_text`` says
    what a ``None`` default means, for help and the README.
    """
    metadata = {"help": help, "flag": flag, "minimum": minimum, "default_text": default_text}
    return dataclasses.field(default=default, metadata=metadata)


# Settings whose "not set" (None) a user may ask for by the word "none": a resume
# carries the checkpoint's value over, and a flag cannot otherwise say None.
CLEARABLE = ("stop_at",)
CLEAR_WORD = "none"

# The learning-rate schedules (training/schedule.py) and hidden-layer
# activations (training/policy.py) a config may name.
LR_SCHEDULES = ("linear", "constant", "adaptive")
ACTIVATIONS = ("tanh", "relu", "elu", "gelu", "silu", "leaky_relu")
# The built-in observation encoders (training/encoders.py); a config may also
# name its own as package.module:Factory.
ENCODERS = ("mlp", "cnn")
# The recurrent cores (training/recurrent.py) that may sit between the encoder and
# the heads; "none" is the feed-forward policy.
RECURRENT_CORES = ("none", "gru", "lstm")
# The critics of a task with several agents (envs/agents.py): IPPO's and MAPPO's.
CRITICS = ("local", "central")


@dataclass(frozen=True)
class PPOConfig:
    """Every knob of a run. Help strings and comments say what each one means for PPO."""

    # --- run shape ---
    task: str = knob(
        "cartpole",
        "Task to train on: a built-in or registered name (esper tasks), gym:ENV_ID, "
        "or package.module:Factory (your BatchedEnv class).",
        flag="--task",
    )
    task_options: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata={
            "help": "The task's own settings, a config file's [task_options] table "
            "(grow-mlp: slots, blueprints, param_budget, rent, max_epochs, ...; "
            "docs/growth.md); the task checks them.",
            "flag": None,
            "minimum": None,
            "default_text": "the task's defaults",
        },
    )
    n_batches: int = knob(50, "Batches to run in this invocation.", flag="--episodes", minimum=1)
    start_batch: int = knob(
        0,
        "Resume offset: batches already completed. K > 0 loads "
        "RUN_DIR/checkpoints/batch_K.pt and the run ends at batch K + --episodes.",
        flag="--start-episode",
        minimum=0,
    )
    n_envs: int = knob(64, "Environments stepped together.", flag="--envs", minimum=1)
    horizon: int = knob(
        128,
        "Environment steps per env in one batch (the rollout horizon).",
        flag="--horizon",
        minimum=1,
    )
    seed: int = knob(1, "Random seed.", flag="--seed")
    device: str = knob(
        "auto", "auto (CUDA when available, else CPU), cpu, cuda or cuda:N.", flag="--device"
    )

    # --- PPO ---
    update_epochs: int = knob(
        4, "Passes of the PPO update over each batch.", flag="--ppo-epochs", minimum=1
    )
    n_minibatches: int = 4  # each pass walks the shuffled batch in this many minibatches
    learning_rate: float = 2.5e-4
    anneal_lr: bool = True  # linear decay to 0 over max_batches
    # Batches the decay spans; None: this invocation's max_batches. Set it to the
    # planned total to make a run split across invocations decay exactly as one.
    anneal_batches: int | None = knob(None, minimum=1)
    # linear (decay to 0, as above), constant, or adaptive: rsl_rl's rule, which
    # steers each minibatch's approx KL toward desired_kl (training/schedule.py).
    lr_schedule: str | None = knob(None, default_text="linear if anneal_lr, else constant")
    desired_kl: float = 0.01  # the approx KL the adaptive schedule steers toward
    adam_eps: float = 1e-5
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_coef: float = 0.2
    clip_value_loss: bool = True
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    normalize_advantages: bool = True
    target_kl: float | None = None  # stop an update's epochs early past this approx KL
    normalize_obs: bool = False  # running mean/std of observations, clipped to +-10
    normalize_reward: bool = False  # divide rewards by a running std of the discounted return
    hidden_sizes: tuple[int, ...] = (64, 64)
    activation: str = "tanh"  # of the hidden layers: one of ACTIVATIONS
    # What reads the observation (training/encoders.py): "mlp", separate actor and
    # critic MLPs of hidden_sizes over the flat observation; "cnn", a conv trunk over
    # [C, H, W] images, then hidden_sizes dense layers shared by both heads; or
    # "package.module:Factory", your torch module in the cnn's place.
    encoder: str = "mlp"
    # A recurrent core after the encoder (training/recurrent.py): "none", "gru" or
    # "lstm" of rnn_hidden units. Its state is carried across steps, reset where an
    # episode ends, and the update replays each environment's whole batch in order.
    recurrent: str = "none"
    rnn_hidden: int = knob(64, minimum=1)
    # --- many agents (envs/agents.py): one policy acts for every agent of a task
    # with several, each agent a row of the batch ---
    # "local" (IPPO): each agent's critic reads that agent's observation; "central"
    # (MAPPO): the critic also reads the task's global state (or every agent's
    # observation), as critic-only entries the actor never sees.
    critic: str = "local"
    # Append a one-hot of the agent's index to each agent's observation, so the
    # shared policy can act differently per agent (tasks with several agents only).
    agent_id: bool = True
    # training/capture.py: the rollout step and the minibatch step through inductor.
    compile: bool = knob(
        False,
        "torch.compile the rollout step and the minibatch step (fused kernels): "
        "compilation first, faster batches after; for long runs with thousands of envs.",
        flag="--compile",
    )
    # training/capture.py: auto stays eager until a CUDA machine has measured graphs.
    cuda_graphs: str = knob(
        "auto",
        "Replay each batch's rollout and update epochs as CUDA graphs: on, off, or auto "
        "(eager until measured on a GPU). On needs CUDA, a built-in batched task and one "
        "process.",
        flag="--cuda-graphs",
    )
    speedups: bool = True  # training/speedups.py's tricks; False: plain torch, same checkpoints

    # --- bookkeeping ---
    run_dir: str | None = knob(
        None,
        "Where telemetry.jsonl and checkpoints/ go; a resume finds the default again.",
        flag="--run-dir",
        default_text="runs/<task>",
    )
    checkpoint_every: int = knob(
        10,
        "Batches between checkpoints (the last batch always saves).",
        flag="--checkpoint-every",
        minimum=1,
    )
    keep_checkpoints: int | None = knob(
        None,
        "Keep only the newest N checkpoints (the newest is never deleted).",
        flag="--keep-checkpoints",
        minimum=1,
        default_text="all",
    )
    overwrite: bool = knob(
        False,
        "Allow a fresh run to replace the run dir's checkpoints and telemetry "
        "(or a resume to replace later checkpoints).",
        flag="--overwrite",
    )

    # --- evaluation while training (training/evaluation.py) ---
    eval_every: int | None = knob(
        None,
        "Batches between evaluations: deterministic episodes on separate environments, "
        "recorded as EVALUATION_COMPLETED; the best is kept as RUN_DIR/checkpoints/best.pt.",
        flag="--eval-every",
        minimum=0,
        default_text="off",
    )
    eval_episodes: int = knob(
        10, "Complete episodes each evaluation runs.", flag="--eval-episodes", minimum=1
    )
    stop_at: float | None = knob(
        None,
        "End the run (completed) when an evaluation's mean return reaches this; needs "
        "--eval-every. A resume keeps the run's target; none clears it.",
        flag="--stop-at",
        default_text="never",
    )
    video_every: int | None = knob(
        None,
        "Batches between videos of one deterministic episode, written to "
        "RUN_DIR/videos/batch_K.mp4 (needs esper-rl[video]).",
        flag="--video-every",
        minimum=0,
        default_text="off",
    )

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            minimum = item.metadata.get("minimum")
            value = getattr(self, item.name)
            _require(
                minimum is None or value is None or value >= minimum,
                item.name,
                f"must be >= {minimum} (got {value})",
            )
        _require(
            self.n_minibatches >= 1 and self.batch_size % self.n_minibatches == 0,
            "n_minibatches",
            f"must be >= 1 and divide n_envs x horizon = {self.batch_size} "
            f"(got {self.n_minibatches})",
        )
        _require(
            self.cuda_graphs in ("auto", "on", "off"),
            "cuda_graphs",
            f"must be auto, on or off (got {self.cuda_graphs!r})",
        )
        _require(self.learning_rate > 0, "learning_rate", f"must be > 0 (got {self.learning_rate})")
        if self.stop_at is not None and not self.eval_every:
            raise ConfigError(
                "stop_at",
                "needs evaluations to compare with: set {eval_every} too",
                mentions=("eval_every",),
            )
        _require(
            self.lr_schedule in (None, *LR_SCHEDULES),
            "lr_schedule",
            f"must be {', '.join(LR_SCHEDULES)} (got {self.lr_schedule!r})",
        )
        _require(
            self.anneal_lr or self.lr_schedule != "linear",
            "lr_schedule",
            "linear contradicts anneal_lr = false; set one of them",
        )
        _require(self.desired_kl > 0, "desired_kl", f"must be > 0 (got {self.desired_kl})")
        _require(
            self.activation in ACTIVATIONS,
            "activation",
            f"must be one of {', '.join(ACTIVATIONS)} (got {self.activation!r})",
        )
        _require(
            self.encoder in ENCODERS or _names_factory(self.encoder),
            "encoder",
            f"must be mlp, cnn or package.module:Factory (got {self.encoder!r})",
        )
        _require(
            self.recurrent in RECURRENT_CORES,
            "recurrent",
            f"must be {', '.join(RECURRENT_CORES)} (got {self.recurrent!r})",
        )
        _require(
            self.recurrent == "none" or self.n_envs % self.n_minibatches == 0,
            "n_minibatches",
            f"a recurrent policy's minibatches are whole environments' sequences: "
            f"{self.n_minibatches} must divide n_envs = {self.n_envs}",
        )
        _require(
            self.critic in CRITICS,
            "critic",
            f"must be {' or '.join(CRITICS)} (got {self.critic!r})",
        )
        _require(0 < self.gamma <= 1, "gamma", f"must be in (0, 1] (got {self.gamma})")
        _require(
            0 <= self.gae_lambda <= 1, "gae_lambda", f"must be in [0, 1] (got {self.gae_lambda})"
        )
        _require(self.clip_coef > 0, "clip_coef", f"must be > 0 (got {self.clip_coef})")
        _require(self.max_grad_norm > 0, "max_grad_norm", f"must be > 0 (got {self.max_grad_norm})")
        _require(
            len(self.hidden_sizes) >= 1 and all(h >= 1 for h in self.hidden_sizes),
            "hidden_sizes",
            f"must be a non-empty list of positive layer widths (got {list(self.hidden_sizes)})",
        )

    @property
    def schedule(self) -> str:
        """The learning-rate schedule in effect: ``lr_schedule``, else anneal_lr's choice."""
        return self.lr_schedule or ("linear" if self.anneal_lr else "constant")

    @property
    def max_batches(self) -> int:
        """The batch count the run ends at: ``n_batches + start_batch``."""
        return self.n_batches + self.start_batch

    @property
    def batch_size(self) -> int:
        """Transitions per batch: ``n_envs x horizon``."""
        return self.n_envs * self.horizon

    @property
    def minibatch_size(self) -> int:
        return self.batch_size // self.n_minibatches

    def resolved_run_dir(self) -> Path:
        """``run_dir`` or the default ``runs/<task>``, which a resume finds again."""
        if self.run_dir:
            return Path(self.run_dir)
        return Path("runs") / task_slug(self.task)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly values (tuples become lists)."""
        out = dataclasses.asdict(self)
        out["hidden_sizes"] = list(self.hidden_sizes)
        return out


def _names_factory(text: str) -> bool:
    """``package.module:Factory``: a module path and an attribute, both non-empty."""
    module, sep, attribute = text.partition(":")
    return bool(sep and module.strip() and attribute.strip())


def task_slug(task: str) -> str:
    """``task`` as one folder name: ``gym:ALE/Pong-v5`` -> ``gym_ALE_Pong-v5``."""
    return task.replace(":", "_").replace("/", "_")


def _require(ok: bool, setting: str, message: str) -> None:
    if not ok:
        raise ConfigError(setting, message)


FIELDS = {f.name: f for f in dataclasses.fields(PPOConfig)}
CONFIG_KEYS = frozenset(FIELDS)
# Each flag-carrying setting and its ``esper ppo`` flag: the CLI's one table.
SETTING_FLAGS = {name: f.metadata["flag"] for name, f in FIELDS.items() if f.metadata.get("flag")}


__all__ = [
    "CONFIG_KEYS",
    "SETTING_FLAGS",
    "PPOConfig",
]
