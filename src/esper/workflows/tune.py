"""``esper tune``: hyperparameter search with Optuna (the ``tune`` extra).

Each trial is one esper run (the task's defaults, ``--config``, ``--set``, then
the trial's values) of ``episodes`` batches, scored by the mean of its last 5
batch means (the seed table's "last-5"). Optuna's TPE sampler proposes the
values; the median pruner, fed each batch's mean return as it completes, stops
a trial that trails the median of earlier ones at the same batch (a callback
on the run's telemetry asks the trainer to stop at the batch boundary).

The study lives in ``TUNE_DIR/study.db`` (SQLite): running ``esper tune`` again
with the same dir and study name continues it, keeping every finished trial,
and re-runs the values of a trial that a crash left unfinished. The first
trial of a study is the base config itself (the shipped settings, unless
``--config``/``--set`` change them), so the search is measured against it. The
best config so far is kept in ``TUNE_DIR/best.toml``, a file ``esper ppo
--config`` takes.
"""

from __future__ import annotations

import contextlib
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from esper import api
from esper.config.run import make_config
from esper.config.schema import PPOConfig
from esper.config.text import load_config_file
from esper.runs.lock import one_process
from esper.runtime.errors import ConfigError, UserError
from esper.runtime.extras import import_extra
from esper.telemetry.events import BatchCompletedPayload, TelemetryEvent
from esper.workflows.tune_space import (
    DEFAULT_SPACE_NAME,
    NOT_SETTINGS,
    Param,
    check_baseline,
    load_space,
)

LAST = 5  # the objective: the mean of the last 5 batch means
# What makes trials comparable, by the setting that gives it: recorded with the study.
TRIAL_SHAPE = ("task", "n_batches")
BASELINE = "baseline"  # the user attr marking the base config's trial
STALE = "stale"  # the user attr marking a trial a crash left unfinished


@dataclass
class Study:
    """What to search: the base run every trial shares, the space, the budget."""

    tune_dir: Path
    trials: int
    task: str | None = None
    episodes: int | None = None
    config_file: Path | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # --set, already parsed
    seed: int = 1
    device: str | None = None
    space_file: Path | None = None
    name: str | None = None

    @property
    def storage(self) -> str:
        return f"sqlite:///{(self.tune_dir / 'study.db').resolve()}"

    def base_overrides(self) -> dict[str, Any]:
        chosen = {"task": self.task, "n_batches": self.episodes, "device": self.device}
        return {**self.settings, **{k: v for k, v in chosen.items() if v is not None}}


@dataclass
class TuneResult:
    study_name: str
    trials: int  # finished trials in the study (complete, pruned or failed)
    completed: int
    pruned: int
    seconds: float  # this invocation's
    best_value: float | None
    best_trial: int | None
    best_params: dict[str, Any]
    baseline_value: float | None
    best_file: Path | None


def objective_value(batch_means: list[float | None]) -> float:
    """The mean of the last 5 batch means that exist; NaN (a failed trial) if none."""
    tail = [m for m in batch_means[-LAST:] if m is not None and math.isfinite(m)]
    return statistics.fmean(tail) if tail else math.nan


def tune(study: Study, progress: bool = True) -> TuneResult:
    """Run trials until the study holds ``study.trials`` finished ones."""
    optuna = import_extra("optuna", "tune", "tune")
    space = load_space(study.space_file)
    if study.trials < 1:
        raise ConfigError("trials", f"must be >= 1 (got {study.trials})")
    base = make_config(study.config_file, study.base_overrides())  # bad input: now
    check_baseline(base, space, str(study.space_file or DEFAULT_SPACE_NAME))
    name = study.name or f"esper-{base.task}"
    started = time.perf_counter()
    # One esper tune per study folder: a trial left running is then surely a crash's.
    with one_process(study.tune_dir, "tune_dir", "esper tune"):
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        ostudy = optuna.create_study(
            study_name=name,
            storage=study.storage,
            sampler=optuna.samplers.TPESampler(seed=study.seed),
            pruner=optuna.pruners.MedianPruner(
                n_startup_trials=4, n_warmup_steps=max(1, base.n_batches // 3)
            ),
            direction="maximize",
            load_if_exists=True,
        )
        _require_same_trials(ostudy, base, study.tune_dir)
        # The sampler goes on from the study's history: seeded per invocation with the
        # seed alone, a continued study drew its first trials again (repeats).
        ostudy.sampler = optuna.samplers.TPESampler(
            seed=sampler_seed(study.seed, len(ostudy.trials))
        )
        _requeue_unfinished(optuna, ostudy)
        if not ostudy.trials:
            ostudy.enqueue_trial(
                {key: getattr(base, key) for key in space}, user_attrs={BASELINE: True}
            )
        done = len(_finished(optuna, ostudy))
        best_file = study.tune_dir / "best.toml"

        def objective(trial: Any) -> float:
            return _run_trial(optuna, trial, study, space, base.n_batches, progress)

        def keep_best(ostudy: Any, trial: Any) -> None:
            with contextlib.suppress(ValueError):  # no completed trial yet
                if ostudy.best_trial.number == trial.number:
                    write_best(best_file, study, base, ostudy)

        if study.trials > done:
            ostudy.optimize(objective, n_trials=study.trials - done, callbacks=[keep_best])
    return _summary(optuna, ostudy, name, time.perf_counter() - started, best_file)


def _run_trial(
    optuna: Any, trial: Any, study: Study, space: dict[str, Param], batches: int, progress: bool
) -> float:
    """One esper run with the trial's values; its intermediate values are batch means."""
    values = {key: param.suggest(trial) for key, param in space.items()}
    pruned_at: list[int] = []

    def report(event: TelemetryEvent) -> bool:
        data = event.data
        if not isinstance(data, BatchCompletedPayload) or data.episode_return_mean is None:
            return False
        trial.report(data.episode_return_mean, event.batch)
        if trial.should_prune():
            pruned_at.append(event.batch or 0)
            return True  # stop at this batch's end
        return False

    run_dir = study.tune_dir / "trials" / f"trial-{trial.number:04d}"
    started = time.perf_counter()
    try:
        outcome = api.train(
            config_file=study.config_file,
            progress=False,
            callbacks=[report],
            **{
                **study.base_overrides(),
                **values,
                "seed": study.seed,
                "run_dir": str(run_dir),
                "overwrite": True,  # the trial's own dir under the tune dir
                "checkpoint_every": 10**9,  # only the last batch
            },
        )
    except UserError as exc:  # values the config refuses (e.g. minibatches that do not divide)
        trial.set_user_attr("error", str(exc))
        _say(progress, f"trial {trial.number}: refused ({exc})")
        return math.nan
    seconds = time.perf_counter() - started
    means = [stats.get("episode_return_mean") for stats in outcome.result.history]
    if pruned_at:
        _say(progress, f"trial {trial.number}: pruned at batch {pruned_at[0]} ({seconds:.1f} s)")
        raise optuna.TrialPruned()
    if outcome.status != "completed":
        trial.set_user_attr("error", str(outcome.reason))
        _say(progress, f"trial {trial.number}: {outcome.status}: {outcome.reason}")
        return math.nan
    value = objective_value(means)
    _say(progress, f"trial {trial.number}: last-5 mean {value:.1f} ({seconds:.1f} s) {values}")
    return value


def sampler_seed(seed: int, trials_so_far: int) -> int:
    """The sampler's seed for an invocation that finds ``trials_so_far`` trials: the
    study's seed for a new study, a different one for every continuation."""
    return seed if trials_so_far == 0 else (seed * 1_000_003 + trials_so_far) % 2**32


def _require_same_trials(ostudy: Any, base: PPOConfig, tune_dir: Path) -> None:
    """A study's trials are comparable only if each ran the same task for the same
    batches: the first invocation records them; a continuation must match."""
    recorded = {key: ostudy.user_attrs.get(key) for key in TRIAL_SHAPE}
    wanted = {key: getattr(base, key) for key in TRIAL_SHAPE}
    if not ostudy.trials and all(value is None for value in recorded.values()):
        for key, value in wanted.items():
            ostudy.set_user_attr(key, value)
        return
    for key, value in wanted.items():
        if recorded[key] is not None and recorded[key] != value:
            raise ConfigError(
                key,
                f"the study in {tune_dir} ran its trials with {recorded[key]!r}, not "
                f"{value!r}; continue it with the same value, or tune in another --dir",
            )


def _say(progress: bool, line: str) -> None:
    if progress:
        print(f"esper: {line}", flush=True)


def _finished(optuna: Any, ostudy: Any) -> list[Any]:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    failed = optuna.trial.TrialState.FAIL
    return [
        t
        for t in ostudy.trials
        if t.state in states or (t.state is failed and not t.user_attrs.get(STALE))
    ]


def _requeue_unfinished(optuna: Any, ostudy: Any) -> None:
    """A trial still RUNNING (its process crashed) is marked failed and its values
    queued again, so the study goes on where it stopped."""
    storage = ostudy._storage
    for trial in ostudy.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        storage.set_trial_user_attr(trial._trial_id, STALE, True)
        storage.set_trial_state_values(trial._trial_id, state=optuna.trial.TrialState.FAIL)
        ostudy.enqueue_trial(trial.params, user_attrs=dict(trial.user_attrs, **{STALE: False}))


def _summary(optuna: Any, ostudy: Any, name: str, seconds: float, best_file: Path) -> TuneResult:
    state = optuna.trial.TrialState
    complete = [t for t in ostudy.trials if t.state is state.COMPLETE]
    best = max(complete, key=lambda t: t.value, default=None)
    baseline = next((t.value for t in complete if t.user_attrs.get(BASELINE)), None)
    return TuneResult(
        study_name=name,
        trials=len(_finished(optuna, ostudy)),
        completed=len(complete),
        pruned=sum(t.state is state.PRUNED for t in ostudy.trials),
        seconds=seconds,
        best_value=best.value if best else None,
        best_trial=best.number if best else None,
        best_params=dict(best.params) if best else {},
        baseline_value=baseline,
        best_file=best_file if best_file.is_file() else None,
    )


def toml_value(value: Any) -> str:
    """A config value as TOML text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def write_best(path: Path, study: Study, base: PPOConfig, ostudy: Any) -> None:
    """The best trial's full config as a ``--config`` file: the base run's settings
    (file, --set, task, batches) and the trial's values; written whole, then renamed."""
    best = ostudy.best_trial
    values = load_config_file(study.config_file) if study.config_file else {}
    values |= {key: v for key, v in study.base_overrides().items() if key not in NOT_SETTINGS}
    values |= {"task": base.task, "n_batches": base.n_batches, **best.params}
    lines = [
        f"# esper tune: the best of study {ostudy.study_name!r} ({study.tune_dir / 'study.db'})",
        f"# trial {best.number}: last-5 batch mean return {best.value:.2f} over "
        f"{base.n_batches} batches, seed {study.seed}",
        *(f"{key} = {toml_value(value)}" for key, value in values.items()),
    ]
    scratch = path.with_suffix(".toml.tmp")
    scratch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    scratch.replace(path)
