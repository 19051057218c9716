"""``esper check-env``: every built-in task passes; each broken env is named."""

from __future__ import annotations

from pathlib import Path

import broken_envs
import pytest

from esper.envs import TASKS
from esper.envs.check import FAIL, PASS, SKIP, check_env, check_factory

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("task", [*sorted(TASKS), "gym:CartPole-v1"])
def test_every_builtin_task_keeps_the_contract(task: str) -> None:
    report = check_env(task, speed_sizes=(4,))
    assert report.ok, [(r.rule, r.detail) for r in report.results if r.status == FAIL]
    statuses = {r.rule: r.status for r in report.results}
    if task in TASKS and not TASKS[task].spec.has_action_mask:
        assert statuses.pop("action mask") == SKIP  # nothing to check without a mask
    assert all(s == PASS for s in statuses.values()) or task.startswith("gym:")
    assert report.steps_per_second[4] > 0


def test_gym_tasks_skip_what_gymnasium_cannot_do() -> None:
    statuses = {r.rule: r.status for r in check_env("gym:CartPole-v1", speed_sizes=()).results}
    assert statuses["state_dict round trip"] == statuses["no host sync per step"] == SKIP
    assert statuses["determinism under a seed"] == PASS


def failures(factory) -> dict[str, str]:
    report = check_factory(factory, factory.__name__, speed_sizes=())
    assert not report.ok
    return {r.rule: r.detail for r in report.results if r.status == FAIL}


def test_wrong_observation_shape_is_named() -> None:
    failed = failures(broken_envs.WrongObsShape)
    assert failed["reset() observation"].startswith("reset() obs has shape (8, 3), want (8, 4)")
    assert "obs_dim in the spec must match" in failed["step() tensors"]


def test_missing_final_obs_is_named() -> None:
    assert failures(broken_envs.NoFinalObs) == {
        "step() tensors": 'info has no "final_obs": return the observation each copy reached '
        "before any reset (BatchedEnv.step does this for you)"
    }


def test_tensor_on_the_wrong_device_is_named() -> None:
    assert failures(broken_envs.RewardOnWrongDevice) == {
        "step() tensors": "reward is on meta, the env on cpu: make it with device=self.device"
    }


def test_a_host_sync_in_step_is_named() -> None:
    failed = failures(broken_envs.SyncsEveryStep)
    assert list(failed) == ["no host sync per step"]
    assert "tensor.item()" in failed["no host sync per step"]


def test_nondeterminism_is_named() -> None:
    failed = failures(broken_envs.GlobalRandomStart)
    assert "determinism under a seed" in failed


def test_the_command_exits_non_zero_on_a_broken_env(tmp_path, monkeypatch) -> None:
    """The command through the CLI in this process (its exit code is the CLI's)."""
    from typer.testing import CliRunner

    from esper.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    done = CliRunner().invoke(app, ["check-env", "broken_envs:NoFinalObs", "--speed", "4"])
    assert done.exit_code == 1, done.output
    assert 'info has no "final_obs"' in done.output
    assert "broken rules: step() tensors" in done.output


def test_a_float_terminated_is_a_named_rule_failure_not_a_torch_error() -> None:
    failed = failures(broken_envs.FloatTerminated)
    assert failed == {
        "step() tensors": "dynamics() terminated is torch.float32, want torch.bool: a comparison "
        "gives one (e.g. x.abs() > limit); or convert with .bool()"
    }


def test_a_state_of_the_wrong_dtype_is_a_named_rule_failure() -> None:
    failed = failures(broken_envs.DoubleInitialState)
    detail = failed["step() tensors"]
    assert detail.startswith("initial_state() is torch.float64, want torch.float32")
    assert "make states with dtype=self.dtype" in detail and "raised" not in detail


def test_final_obs_holding_the_observation_after_the_reset_is_named() -> None:
    failed = failures(broken_envs.FinalObsAfterReset)
    detail = failed['auto-reset and info["final_obs"]']
    assert "equalled the observation after the reset" in detail


def test_the_report_shows_an_image_observation_by_its_shape() -> None:
    from esper.envs import make
    from esper.envs.check import _facts

    facts = _facts(make("minatar-breakout", 2))
    assert facts["obs"] == "[num_envs, 400] float32: 4×10×10 images, flattened"


def test_a_mask_of_the_wrong_dtype_or_shape_is_named() -> None:
    assert failures(broken_envs.MaskOfWrongDtype) == {
        "action mask": "action_mask after reset() is torch.float32, want torch.bool: "
        "build it with a comparison"
    }
    detail = failures(broken_envs.MaskOfWrongWidth)["action mask"]
    assert detail.startswith("action_mask after reset() has shape (8, 2), want (8, 3)")


def test_a_state_with_every_action_masked_is_named() -> None:
    detail = failures(broken_envs.EverythingForbidden)["action mask"]
    assert "allows no action in" in detail and "legal_actions has a bug" in detail


def test_a_stale_mask_that_lets_a_forbidden_action_be_sampled_is_named() -> None:
    detail = failures(broken_envs.StaleMask)["action mask"]
    assert "is not legal_actions(state)" in detail and "\n" not in detail
