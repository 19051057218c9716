"""The Python API the CLI is a thin layer over.

``train`` turns user input into a validated ``PPOConfig`` (``run_config``; for a
resume, starting from the checkpoint's own config) and runs it with the usual
sinks attached (``run_sinks``).
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper.config.run import carried_over, make_config
from esper.config.schema import CLEAR_WORD, FIELDS, PPOConfig
from esper.config.text import EDGE_WORDS, field_names, parse_assignments
from esper.envs import env_class
from esper.runs.directory import RunDir
from esper.runs.lock import RunLock
from esper.runs.sinks import (
    Callback,
    Display,
    LazyJsonl,
    StoppingCallback,
    choose_display,
    live_dashboard,
)
from esper.runtime.console import console_guarded
from esper.runtime.errors import ConfigError, UserError
from esper.runtime.torchrun_env import is_main_process
from esper.telemetry.console import ConsoleSink
from esper.telemetry.events import TelemetryEvent, TelemetryEventType
from esper.telemetry.hub import SubscriberFailure, TelemetryHub
from esper.telemetry.progress import ProgressSink
from esper.telemetry.tensorboard import TensorBoardSink
from esper.telemetry.wandb import MODES as TRACK_MODES
from esper.telemetry.wandb import WandbSink
from esper.training.checkpoint import best_return
from esper.training.distributed.collectives import Collectives, process_group
from esper.training.distributed.launch import restart_words
from esper.training.distributed.rank_failures import PeerFailure
from esper.training.evaluation import best_path
from esper.training.interrupt import StopRequest, graceful_signals
from esper.training.loop import run_vectorized_ppo
from esper.training.report import FRESH_ENVS_NOTE, TrainingResult


@dataclass
class TrainOutcome:
    """A finished invocation: the trainer's result plus what to tell the user."""

    result: TrainingResult
    config: PPOConfig
    telemetry_failures: list[SubscriberFailure] = field(default_factory=list)
    # How this invocation recorded the run: a resume must record the same way.
    tensorboard: bool = False
    track: str | None = None  # a W&B mode, as run_training takes it

    def __getattr__(self, name: str) -> Any:
        return getattr(self.result, name)

    def __repr__(self) -> str:
        """One line a notebook can show: the whole ``history`` is one attribute away."""
        r = self.result
        last = r.last_batch.get("episode_return_mean")
        shown = "None" if last is None else f"{last:.4g}"
        return (
            f"TrainOutcome(status={r.status!r}, run_dir={str(r.run_dir)!r}, "
            f"final_batch={r.final_batch}, env_steps={r.env_steps}, "
            f"return_mean={shown}, reason={r.reason!r})"
        )

    @property
    def resume_command(self) -> str:
        """The command that continues this run to its ``max_batches``, spelled the
        way this process was launched (``torchrun ... -m esper``, ``uv run esper``, ...)."""
        parts = [*restart_words(), "ppo", "--task", self.config.task]
        parts += ["--run-dir", str(self.config.resolved_run_dir())]
        parts += ["--resume", "--episodes", str(self._remaining())]
        for key, value in self._invocation().items():
            flag = f"--{key.replace('_', '-')}"
            parts += [flag] if value in (True, "default") else [flag, value]
        return shlex.join(parts)

    @property
    def resume_call(self) -> str:
        """The Python call that continues this run (``resume_command``'s twin)."""
        extra = "".join(
            f", {key}={True if value == 'default' else value!r}"
            for key, value in self._invocation().items()
        )
        return (
            f"esper.train(task={self.config.task!r}, episodes={self._remaining()}, "
            f"run_dir={str(self.config.resolved_run_dir())!r}, resume=True{extra})"
        )

    def _invocation(self) -> dict[str, Any]:
        """What a resume does not take from the checkpoint (INVOCATION_KEYS, the
        sinks) but should keep: the device and how the run is recorded."""
        kept: dict[str, Any] = {}
        if self.config.device != FIELDS["device"].default:
            kept["device"] = self.config.device
        if self.tensorboard:
            kept["tensorboard"] = True
        if self.track:
            kept["track"] = self.track
        return kept

    def _remaining(self) -> int:
        """Batches from the newest checkpoint to this run's ``max_batches``."""
        newest = max(RunDir(self.config.resolved_run_dir()).checkpoints(), default=0)
        return max(self.config.max_batches - newest, 1)


def train(
    task: str | None = None,
    episodes: int | None = None,
    *,
    config_file: Path | str | None = None,
    resume: bool = False,
    progress: bool = True,
    tensorboard: bool = False,
    track: bool | str = False,
    total_timesteps: int | None = None,
    callbacks: Sequence[Callback] = (),
    **overrides: Any,
) -> TrainOutcome:
    """Train from Python: ``esper.train(task="cartpole", episodes=20, n_envs=128)``.

    ``task`` None: the config file's, else cartpole.

    ``overrides`` are ``PPOConfig`` field names, or the CLI's words for them
    (``start_episode`` resumes, ``max_epochs`` is the horizon, as on the CLI).
    ``resume=True`` continues from the newest intact checkpoint. ``progress``
    shows what the CLI shows without the dashboard: a progress bar in a
    terminal, one line per batch otherwise; ``progress=False`` is silent.
    Errors name the keyword (``n_envs: must be >= 1``). Returns the outcome:
    status, run dir and the last batch's statistics.

    ``episodes`` None: the task config's batch count; ``total_timesteps`` gives
    the budget in env steps instead (CleanRL's way), rounded up to whole batches.
    ``track`` logs to Weights & Biases: True (online, or as ``WANDB_MODE`` says),
    ``"online"`` or ``"offline"``. Each of ``callbacks`` is called with every
    ``TelemetryEvent`` of the run; one that returns ``True`` asks the run to stop
    at the next batch boundary, which ends it ``interrupted`` (checkpointed,
    resumable), as a Ctrl-C would; one that raises fails the run at once
    (``failed``, TRAINING_FAILED naming the callback, the traceback in
    RUN_DIR/error.log), as Stable-Baselines3's do.
    """
    try:  # a conflict names the keywords as given (episodes and n_episodes too)
        fields = field_names({"n_batches": episodes, **overrides})
    except UserError as exc:
        raise exc.in_words({"n_batches": "episodes"}) from None
    words = {"n_batches": "episodes"} | {
        EDGE_WORDS[key]: key for key in overrides if key in EDGE_WORDS
    }
    display: Display = ("progress" if sys.stdout.isatty() else "lines") if progress else "none"
    try:
        outcome = _train_in_group(
            Path(config_file) if config_file else None,
            {"task": task, **fields},
            display,
            tensorboard,
            resume,
            track=_track_mode(track),
            total_timesteps=total_timesteps,
            callbacks=callbacks,
        )
    except UserError as exc:
        raise exc.in_words(words) from None
    if progress and is_main_process() and outcome.status == "interrupted":
        print(f"esper: interrupted; resume with: {outcome.resume_call}", file=sys.stderr)
    elif progress and outcome.status == "failed":
        print(f"esper: training failed: {outcome.reason}", file=sys.stderr)
    return outcome


def _train_in_group(
    config_file: Path | None,
    overrides: dict[str, Any],
    display: Display,
    tensorboard: bool,
    resume: bool,
    *,
    track: str | None = None,
    total_timesteps: int | None = None,
    callbacks: Sequence[Callback] = (),
) -> TrainOutcome:
    """One process, or this rank of a torchrun job: rank 0 locks the run dir, reads
    the config (and a resume's checkpoint) and shares it; only rank 0 writes
    telemetry or draws."""
    with process_group() as group, RunLock() as lock:

        def decide() -> tuple[PPOConfig, dict[str, Any]]:
            config = make_config(
                config_file, overrides, resume=resume, total_timesteps=total_timesteps, lock=lock
            )
            return config, carried_over(config, config_file, overrides)

        config, carried = group.main_decides(decide)
        if not group.is_main:
            display, tensorboard, track = "none", False, None
        return run_training(
            config,
            display=display,
            tensorboard=tensorboard,
            group=group,
            track=track,
            callbacks=callbacks,
            lock=lock,
            carried=carried,
        )


def _track_mode(track: bool | str | None) -> str | None:
    """``track`` as a W&B mode: None (off), ``"default"`` (WANDB_MODE, else online),
    ``"online"`` or ``"offline"``."""
    if track is None or track is False:
        return None
    if track is True or track == "default":
        return "default"
    if track not in TRACK_MODES:
        raise ConfigError("track", f"must be {' or '.join(TRACK_MODES)} (got {track!r})")
    return str(track)


def run_training(
    config: PPOConfig,
    *,
    display: Display = "lines",
    stop: StopRequest | None = None,
    tensorboard: bool = False,
    group: Collectives | None = None,
    track: str | None = None,
    callbacks: Sequence[Callback] = (),
    lock: RunLock | None = None,
    carried: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Run ``config`` with the JSONL record and a display: the Sanctum dashboard, a
    progress bar, plain lines or nothing; ``tensorboard`` adds RUN_DIR/tensorboard/,
    ``track`` (a W&B mode, see ``train``) Weights & Biases; ``callbacks`` get every
    event and may ask for a stop (see ``train``).
    A rank other than 0 of a torchrun job (``group``) writes no telemetry.
    Rank 0 holds ``lock`` on the run dir (its own, if none is given) for the run.
    ``carried``: the settings a resume took from its checkpoint (``carried_over``)."""
    group = group or Collectives()
    run_dir = RunDir(config.resolved_run_dir())
    with contextlib.ExitStack() as stack:
        stack.enter_context(console_guarded())  # a closed console never fails the run
        if lock is None:
            lock = stack.enter_context(RunLock())
        group.main_decides(lambda: lock.take(run_dir.path))
        notes = resume_notes(config, run_dir, carried or {})
        return _run_locked(
            config, run_dir, display, stop, tensorboard, group, track, callbacks, notes
        )


def _run_locked(
    config: PPOConfig,
    run_dir: RunDir,
    display: Display,
    stop: StopRequest | None,
    tensorboard: bool,
    group: Collectives,
    track: str | None,
    callbacks: Sequence[Callback],
    notes: list[str],
) -> TrainOutcome:
    """``run_training`` once the run dir is this process's; ``notes`` go to the
    console and into TRAINING_STARTED's message."""
    hub = TelemetryHub()
    if tensorboard:  # a missing package is an error before training starts
        hub.subscribe(TensorBoardSink(run_dir.tensorboard_dir))
    if track:
        wandb = WandbSink(run_dir.path, None if track == "default" else track)
        hub.subscribe(wandb)
        notes = [*notes, *filter(None, [wandb.resume_note(config.start_batch)])]
    stop = stop or StopRequest()
    if group.is_main and display != "none":
        hub.subscribe(_notes_at_start([*run_notes(config, run_dir), *notes]))
    with graceful_signals(stop):
        # The run dir is checked (and cleared on --overwrite) by the trainer before
        # it emits anything, so the JSONL sink subscribes lazily on the first event.
        if group.is_main:
            hub.subscribe(LazyJsonl(run_dir))
        if display == "lines":
            hub.subscribe(ConsoleSink())
        elif display == "progress":
            hub.subscribe(ProgressSink())
        for callback in callbacks:  # after the record, so a callback sees what is saved
            hub.subscribe(StoppingCallback(callback, stop))
        dashboard = live_dashboard(hub) if display == "sanctum" else nullcontext()
        try:
            with dashboard:
                result = run_vectorized_ppo(config, hub, stop, group, notes=notes)
        except UserError:  # the CLI makes these one line, exit 2
            raise
        except Exception as exc:  # a bug or an environment failure: keep the traceback
            result = _crashed(config, run_dir, exc, group.rank)
        finally:
            hub.close()
    return TrainOutcome(
        result,
        config,
        telemetry_failures=list(hub.failures.values()),
        tensorboard=tensorboard,
        track=track,
    )


def _notes_at_start(notes: list[str]) -> Callable[[TelemetryEvent], None]:
    """Prints ``notes`` on the console as training starts: a run refused before
    then (a resume that changes a fixed setting) says only why, in one line."""

    def say(event: TelemetryEvent) -> None:
        if event.event_type is TelemetryEventType.TRAINING_STARTED:
            for note in notes:
                print(f"esper: note: {note}", file=sys.stderr, flush=True)

    return say


def run_notes(config: PPOConfig, run_dir: RunDir) -> list[str]:
    """What the console should know before the run starts (telemetry records
    the same in TRAINING_STARTED's message)."""
    notes = []
    if config.start_batch == 0 and not config.overwrite and run_dir.record() == "no batch":
        notes.append(
            f"{run_dir.path} holds an earlier start that completed no batch; starting "
            "again (its telemetry stays, this run's follows it)"
        )
    if config.start_batch and not getattr(env_class(config.task), "restorable", True):
        notes.append(f"{config.task}: {FRESH_ENVS_NOTE.removeprefix('; ')}")
    return notes


def resume_notes(config: PPOConfig, run_dir: RunDir, carried: dict[str, Any]) -> list[str]:
    """What a resume kept from its checkpoint that the command did not say, and
    whether it continues past a target return the run already reached."""
    if not config.start_batch:
        return []
    notes = []
    if carried:
        kept = ", ".join(f"{key}={value!r}" for key, value in carried.items())
        notes.append(f"carried over from the checkpoint: {kept} (a flag or --set changes one)")
    reached = best_return(best_path(run_dir)) if config.stop_at is not None else None
    if reached is not None and reached >= config.stop_at:
        notes.append(
            f"this run already reached its target return {config.stop_at:g} (best evaluation "
            f"{reached:.1f}); it stops at the next evaluation that reaches it again "
            f"(--stop-at {CLEAR_WORD} trains on)"
        )
    return notes


def _crashed(config: PPOConfig, run_dir: RunDir, exc: Exception, rank: int = 0) -> TrainingResult:
    """Save the traceback beside the run and describe the failure in one line."""
    log = run_dir.path / ("error.log" if rank == 0 else f"error.rank{rank}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a", encoding="utf-8") as fh:
        fh.write("".join(traceback.format_exception(exc)))
    reason = f"{type(exc).__name__}: {exc} (traceback in {log})"
    if isinstance(exc, PeerFailure):  # another rank failed first: say which, then ours
        reason = f"{exc} (rank {rank}'s traceback in {log})"
    return TrainingResult("failed", run_dir.path, "", config.start_batch, 0, reason=reason)


def train_from_cli(
    config_file: Path | None,
    overrides: dict[str, Any],
    sanctum: bool | None,
    tensorboard: bool = False,
    resume: bool = False,
    settings: Sequence[str] | None = None,
    total_timesteps: int | None = None,
    track: str | None = None,
) -> TrainOutcome:
    """``esper ppo``. The layers, lowest first: the task's defaults, ``config_file``,
    ``settings`` (``KEY=VALUE`` pairs, ``--set``), then ``overrides`` (the flags)."""
    flags = {key: value for key, value in overrides.items() if value is not None}
    fields = {**parse_assignments(list(settings or ())), **flags}
    return _train_in_group(
        config_file,
        fields,
        choose_display(sanctum),
        tensorboard,
        resume,
        track=_track_mode(track),
        total_timesteps=total_timesteps,
    )
