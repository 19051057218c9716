"""esper tune: trials of tiny runs, a best.toml that --config takes, a study that
continues after a crash, pruning that stops a run at its batch boundary, and
one-line errors. Skipped without the tune extra (optuna)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna")
from typer.testing import CliRunner  # noqa: E402

from esper.cli import app  # noqa: E402
from esper.config.layers import build_config  # noqa: E402
from esper.runs.curves import read_curves  # noqa: E402
from esper.workflows.tune import Study, _run_trial, tune  # noqa: E402
from esper.workflows.tune_space import load_space  # noqa: E402

TINY = {"n_envs": 4, "horizon": 8, "n_minibatches": 1}


def tiny_study(tmp_path: Path, trials: int) -> Study:
    space = tmp_path / "space.toml"
    space.write_text('[learning_rate]\ntype = "float"\nlow = 1e-4\nhigh = 1e-2\nlog = true\n')
    return Study(
        tmp_path / "tune", trials, episodes=2, settings=dict(TINY), device="cpu", space_file=space
    )


def test_trials_run_and_the_best_config_is_a_config_file(tmp_path: Path) -> None:
    result = tune(tiny_study(tmp_path, 2), progress=False)
    assert result.trials == 2 and result.completed == 2
    assert result.baseline_value is not None  # trial 0 is the base config itself
    assert result.best_file is not None
    config = build_config(result.best_file)  # what esper ppo --config reads
    assert config.learning_rate == pytest.approx(result.best_params["learning_rate"])
    assert (config.n_envs, config.horizon, config.n_batches) == (4, 8, 2)


def test_a_study_continues_after_a_crash(tmp_path: Path) -> None:
    study = tiny_study(tmp_path, 1)
    tune(study, progress=False)
    # A crash mid-trial leaves a trial RUNNING in the database.
    stored = optuna.load_study(study_name="esper-cartpole", storage=study.storage)
    crashed = stored.ask(
        {"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    )
    study.trials = 2
    result = tune(study, progress=False)
    trials = optuna.load_study(study_name="esper-cartpole", storage=study.storage).trials
    assert result.trials == 2  # the finished trial kept, one more run
    assert trials[crashed.number].state is optuna.trial.TrialState.FAIL
    rerun = trials[-1]
    assert rerun.state is optuna.trial.TrialState.COMPLETE
    assert rerun.params == crashed.params  # the crashed trial's values, run again


class PruningTrial:
    """A trial the pruner has given up on from the first report."""

    number = 7

    def __init__(self) -> None:
        self.reports: list[tuple[float, int]] = []

    def suggest_float(self, name: str, low: float, high: float, log: bool = False) -> float:
        return low

    def report(self, value: float, step: int) -> None:
        self.reports.append((value, step))

    def should_prune(self) -> bool:
        return True

    def set_user_attr(self, key: str, value: object) -> None:
        pass


def test_a_pruned_trial_stops_its_run_at_the_batch_boundary(tmp_path: Path) -> None:
    study = tiny_study(tmp_path, 1)
    study.episodes = 50
    trial = PruningTrial()
    with pytest.raises(optuna.TrialPruned):
        _run_trial(optuna, trial, study, load_space(study.space_file), 50, progress=False)
    (first_report,) = trial.reports
    run = read_curves(study.tune_dir / "trials" / "trial-0007")
    assert max(run.batches) == first_report[1] < 50


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ('[lr]\ntype = "float"\nlow = 1e-4\nhigh = 1e-2\n', "unknown key 'lr'; did you mean"),
        ('[gamma]\ntype = "float"\nlow = 0.99\nhigh = 0.9\n', "gamma: needs low < high"),
        ('[n_minibatches]\ntype = "grid"\n', "n_minibatches: needs type = 'float'"),
    ],
)
def test_a_bad_space_is_one_line(tmp_path: Path, space: str, message: str) -> None:
    path = tmp_path / "space.toml"
    path.write_text(space)
    result = CliRunner().invoke(app, ["tune", "--space", str(path), "--dir", str(tmp_path / "t")])
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("esper: error: --space: ") and message in line
    assert str(path) in line
    assert not (tmp_path / "t").exists()


def test_a_base_value_outside_the_space_s_choices_is_one_line_before_any_trial(
    tmp_path: Path,
) -> None:
    """Trial 0 trains the base config: --set n_minibatches=1 against the default
    space's choices (2, 4, 8, 16) was optuna's traceback in trial 0, exit 1."""
    args = ["tune", "--trials", "1", "--episodes", "1", "--dir", str(tmp_path / "t")]
    result = CliRunner().invoke(app, [*args, "--set", "n_minibatches=1"])
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith("esper: error: --set n_minibatches: 1 is not one of the choices")
    assert "(2, 4, 8, 16) esper's default space searches" in line and "--space" in line
    assert not (tmp_path / "t").exists()


def test_a_bad_set_value_is_blamed_on_set_as_esper_ppo_does(tmp_path: Path) -> None:
    args = ["tune", "--trials", "1", "--episodes", "1", "--dir", str(tmp_path / "t")]
    result = CliRunner().invoke(app, [*args, "--set", "gamma=2"])
    assert result.exit_code == 2, result.output
    assert result.output.strip() == "esper: error: --set gamma: must be in (0, 1] (got 2.0)"


def test_without_optuna_one_line_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    result = CliRunner().invoke(app, ["tune", "--dir", str(tmp_path / "t")])
    assert result.exit_code == 2
    assert result.output.strip() == (
        "esper: error: tune: needs the optional package 'optuna': pip install 'esper-rl[tune]'"
    )


def test_best_toml_holds_the_argmax_and_trial_0_is_the_base_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the objective's values fixed (the baseline worst, trial 1 best), the
    study maximises: best.toml holds trial 1's values, not the argmin's."""
    import esper.workflows.tune as tune_module

    values = [1.0, 5.0, 3.0]

    def fixed(optuna, trial, study, space, batches, progress) -> float:
        for param in space.values():
            param.suggest(trial)
        return values[trial.number]

    monkeypatch.setattr(tune_module, "_run_trial", fixed)
    study = tiny_study(tmp_path, 3)
    result = tune(study, progress=False)
    assert (result.best_trial, result.best_value, result.baseline_value) == (1, 5.0, 1.0)
    trials = optuna.load_study(study_name=result.study_name, storage=study.storage).trials
    base = build_config(None, {**TINY, "n_batches": 2})
    assert trials[0].params["learning_rate"] == base.learning_rate  # the base config's value
    assert trials[1].params["learning_rate"] != base.learning_rate
    assert result.best_file is not None
    best = build_config(result.best_file)
    assert best.learning_rate == pytest.approx(trials[1].params["learning_rate"])
    assert "trial 1: last-5 batch mean return 5.00" in result.best_file.read_text()


@pytest.mark.slow
def test_a_continued_study_never_repeats_a_trial(tmp_path: Path) -> None:
    """`esper tune --trials 2` then, in a process of its own, `--trials 4`, in one
    folder: four different trials (the second process's sampler went on from the
    study, not from its seed); a third with other --episodes is refused in one line,
    the study untouched. The first and the refused one run through the CLI in this
    process: only the continuing one needs a fresh process."""
    import subprocess

    space = tmp_path / "space.toml"
    space.write_text('[learning_rate]\ntype = "float"\nlow = 1e-4\nhigh = 1e-2\nlog = true\n')
    tune_dir = tmp_path / "tune"
    settings = [f"--set={key}={value}" for key, value in TINY.items()]
    args = ["tune", "--dir", str(tune_dir), "--space", str(space), "--device", "cpu", *settings]

    first = CliRunner().invoke(app, [*args, "--trials", "2", "--episodes", "2"])
    assert first.exit_code == 0, first.output
    command = [sys.executable, "-m", "esper", *args, "--trials", "4", "--episodes", "2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    storage = f"sqlite:///{tune_dir / 'study.db'}"
    trials = optuna.load_study(study_name="esper-cartpole", storage=storage).trials
    rates = [t.params["learning_rate"] for t in trials]
    assert len(rates) == 4 and len(set(rates)) == 4, rates
    refused = CliRunner().invoke(app, [*args, "--trials", "5", "--episodes", "3"])
    assert refused.exit_code == 2
    assert refused.output.strip() == (
        f"esper: error: --episodes: the study in {tune_dir} ran its trials with 2, not 3; "
        "continue it with the same value, or tune in another --dir"
    )
    assert len(optuna.load_study(study_name="esper-cartpole", storage=storage).trials) == 4
