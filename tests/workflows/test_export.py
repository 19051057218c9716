"""An exported policy acts as ``load_policy`` does, with no esper to run it.

Each format is run by its own runtime (onnxruntime, ``torch.jit.load``) on the
observations given to ``load_policy``. Discrete actions must match exactly;
continuous ones to 1e-5 (absolute and relative: ONNX Runtime's kernels round
differently from torch's; measured 3e-8 on Pendulum, TorchScript exactly).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch
from exported_files import run_exported
from typer.testing import CliRunner

import esper
from esper.cli import app
from esper.config.schema import PPOConfig
from esper.envs.spaces import BoxSpace
from esper.runtime.errors import ConfigError
from esper.telemetry.hub import TelemetryHub
from esper.training import run_vectorized_ppo
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.deterministic import DeterministicPolicy
from esper.workflows.export import export_policy, write_onnx, write_torchscript
from esper.workflows.inference import load_policy

# Its tests share a module fixture: one worker runs them all, building it once.
pytestmark = pytest.mark.xdist_group("test_export")

TOLERANCE = 1e-5  # continuous actions, absolute and relative
runner = CliRunner()


def _train(run_dir: Path, task: str, batches: int = 2, start: int = 0, **changes) -> None:
    config = PPOConfig(
        task=task,
        n_envs=8,
        horizon=32,
        n_minibatches=2,
        n_batches=batches,
        start_batch=start,
        device="cpu",
        run_dir=str(run_dir),
        **changes,
    )
    assert run_vectorized_ppo(config, TelemetryHub()).status == "completed"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A discrete task and a continuous one with an observation normaliser (folded
    into the file) and a non-default activation (read back from the checkpoint)."""
    root = tmp_path_factory.mktemp("export")
    _train(root / "cartpole", "cartpole")
    _train(root / "pendulum", "pendulum", normalize_obs=True, activation="elu")
    return {"cartpole": root / "cartpole", "pendulum": root / "pendulum"}


def _observations(obs_dim: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(257, obs_dim, generator=generator) * 3  # past the normaliser's clip too


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("task", ["cartpole", "pendulum"])
def test_the_exported_file_acts_as_load_policy(
    runs: dict[str, Path], task: str, format: str, tmp_path: Path
) -> None:
    policy = load_policy(runs[task])
    obs = _observations(policy.obs_dim)
    expected = policy(obs)
    path = export_policy(runs[task], format, output=tmp_path / f"policy.{format}")
    actions = run_exported(path, format, obs)
    assert actions.shape == expected.shape
    if policy.model.discrete:
        assert actions.dtype == torch.int64 and torch.equal(actions, expected)
        assert len(expected.unique()) > 1  # both actions chosen: a real comparison
    else:
        torch.testing.assert_close(actions, expected, atol=TOLERANCE, rtol=TOLERANCE)
    single = run_exported(path, format, obs[:1])  # the batch axis is not fixed
    assert single.shape[0] == 1


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_the_clip_to_the_action_bounds_is_in_the_file(format: str, tmp_path: Path) -> None:
    model = ActorCritic(3, BoxSpace((-2.0, 0.0), (2.0, 1.0)), (8,))
    with torch.no_grad():
        model.actor[-1].weight.mul_(1000)  # means far outside the bounds
    module = DeterministicPolicy(model, None)
    obs = _observations(3)
    expected = model.env_action(model.act_deterministic(obs)[0]).detach()
    assert (expected[:, 0].abs() == 2.0).any() and (expected[:, 1] == 0.0).any()
    path = tmp_path / "clip"
    (write_onnx if format == "onnx" else write_torchscript)(module, path)
    torch.testing.assert_close(run_exported(path, format, obs), expected)


def _run_exported_recurrent(
    path: Path, format: str, obs: torch.Tensor, memory: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        action, memory_out = session.run(
            ["action", "memory_out"], {"obs": obs.numpy(), "memory": memory.numpy()}
        )
        return torch.from_numpy(action), torch.from_numpy(memory_out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))(obs, memory)


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("recurrent", ["gru", "lstm"])
def test_a_recurrent_export_takes_and_returns_its_memory(
    tmp_path: Path, format: str, recurrent: str
) -> None:
    """Over 40 steps of 6 copies, resetting two of them midway (zero memory in,
    ``episode_start`` for load_policy), the file acts as load_policy does."""
    _train(tmp_path, "cartpole-no-velocity", recurrent=recurrent, rnn_hidden=8, normalize_obs=True)
    policy = load_policy(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        path = export_policy(tmp_path, format, output=tmp_path / f"policy.{format}")
    said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    assert not said, said  # an export says nothing the user should act on
    generator = torch.Generator().manual_seed(1)
    memory = torch.zeros(6, policy.model.memory_size)
    chosen = []
    for step in range(40):
        obs = torch.randn(6, 2, generator=generator) * 0.5
        starts = torch.zeros(6, dtype=torch.bool)
        if step == 20:
            starts[[1, 4]] = True
            memory[starts] = 0.0
        expected = policy(obs, episode_start=starts)
        actions, memory = _run_exported_recurrent(path, format, obs, memory)
        assert torch.equal(actions, expected), step
        torch.testing.assert_close(memory, policy.memory, atol=TOLERANCE, rtol=TOLERANCE)
        chosen.append(actions)
    assert len(torch.cat(chosen).unique()) > 1  # both actions chosen: a real comparison


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_an_export_drops_the_critic_only_observations(tmp_path: Path, format: str) -> None:
    """probe-privileged observes [1, s] with s for the critic only: the file takes [B, 1]."""
    _train(tmp_path, "probe-privileged", batches=1, normalize_obs=True)
    policy = load_policy(tmp_path)
    module = policy.deterministic_module()
    assert module.example_inputs()[0].shape == (2, 1) and module.obs_mean.shape == (1,)
    path = export_policy(tmp_path, format, output=tmp_path / f"policy.{format}")
    actor_obs = torch.ones(3, 1)
    assert torch.equal(run_exported(path, format, actor_obs), policy(actor_obs))
    assert torch.equal(policy(torch.ones(3, 2)), policy(actor_obs))  # either width


def test_the_normaliser_is_folded_in(runs: dict[str, Path]) -> None:
    module = load_policy(runs["pendulum"]).deterministic_module()
    assert module.normalizes and module.obs_mean.abs().sum() > 0
    assert isinstance(module.model.actor[1], torch.nn.ELU)  # the run's activation


def test_esper_export_is_the_api_and_the_default_file_sits_in_the_run(
    runs: dict[str, Path],
) -> None:
    path = esper.export(runs["cartpole"], format="torchscript", checkpoint=2)
    assert path == runs["cartpole"] / "policy_batch_000002.pt" and path.is_file()


def test_the_cli_writes_the_file(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "p.pt"
    result = runner.invoke(
        app, ["export", str(runs["cartpole"]), "--format", "torchscript", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.is_file() and f"wrote {out}" in result.output


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--format", "tflite"], "--format: must be onnx or torchscript"),
        (["--checkpoint", "7"], "--checkpoint: no checkpoint for batch 7"),
        (
            ["-o", "/nonexistent/dir/p.onnx"],
            "--output: /nonexistent/dir does not exist; create it first",
        ),
    ],
)
def test_bad_input_is_one_line_naming_the_flag(
    runs: dict[str, Path], args: list[str], words: str
) -> None:
    result = runner.invoke(app, ["export", str(runs["cartpole"]), *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and words in lines[0], result.output


@pytest.mark.parametrize("missing", ["onnx", "onnxscript"])
def test_a_missing_onnx_package_is_one_line_naming_the_extra(
    runs: dict[str, Path], missing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)  # importing it now fails
    result = runner.invoke(app, ["export", str(runs["cartpole"]), "--format", "onnx"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "pip install 'esper-rl[export]'" in lines[0], result.output


def test_a_resume_that_changes_the_activation_is_refused_naming_it(tmp_path: Path) -> None:
    _train(tmp_path, "cartpole", batches=1)
    with pytest.raises(ConfigError) as info:
        _train(tmp_path, "cartpole", batches=1, start=1, activation="relu")
    assert info.value.setting == "activation" and "activation='tanh'" in info.value.message


def test_an_unknown_activation_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as info:
        PPOConfig(activation="swish")
    assert info.value.setting == "activation" and "tanh" in info.value.message


def _noise(module, batch: int) -> torch.Tensor:
    """Noise of the kind the file documents: Gumbel (discrete) or standard normal."""
    generator = torch.Generator().manual_seed(2)
    if module.model.discrete:
        uniform = torch.rand(batch, module.noise_width, generator=generator).clamp(1e-20, 1.0)
        return -torch.log(-torch.log(uniform))
    return torch.randn(batch, module.noise_width, generator=generator)


def _run_stochastic(path: Path, format: str, obs: torch.Tensor, noise: torch.Tensor):
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {"obs": obs.numpy(), "noise": noise.numpy()}
        return torch.from_numpy(session.run(["action"], feed)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path))(obs, noise)


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("task", ["cartpole", "pendulum"])
def test_a_stochastic_export_samples_as_training_does(
    runs: dict[str, Path], tmp_path: Path, format: str, task: str
) -> None:
    """The file's action for given noise is the policy's sample for that noise
    (training's sampling: Gumbel-max, or mean + std x noise), normaliser folded in."""
    policy = load_policy(runs[task])
    module = policy.stochastic_module()
    path = export_policy(runs[task], format, output=tmp_path / f"s.{format}", stochastic=True)
    obs = _observations(policy.obs_dim)
    noise = _noise(module, obs.shape[0])
    with torch.no_grad():
        sampled, _ = policy.model.sample(policy._normalized(obs), noise)
    expected = policy.model.env_action(sampled)
    actions = _run_stochastic(path, format, obs, noise)
    torch.testing.assert_close(actions, expected, atol=TOLERANCE, rtol=TOLERANCE)
    assert not torch.equal(actions, run_exported(export_policy(runs[task], format), format, obs))
    if task == "pendulum":  # zero noise: the Gaussian's mean, the deterministic action
        still = _run_stochastic(path, format, obs, torch.zeros_like(noise))
        torch.testing.assert_close(still, policy(obs), atol=TOLERANCE, rtol=TOLERANCE)


def test_the_default_format_is_what_is_installed(
    runs: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxscript")
    assert export_policy(runs["cartpole"]).suffix == ".onnx"
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # a plain install: no export extra
    result = runner.invoke(app, ["export", str(runs["cartpole"])])
    assert result.exit_code == 0, result.output
    assert "policy_batch_000002.pt" in result.output


def _run_exported_masked(
    path: Path, format: str, inputs: dict[str, torch.Tensor], outputs: list[str]
) -> list[torch.Tensor]:
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        feed = {name: value.numpy() for name, value in inputs.items()}
        return [torch.from_numpy(out) for out in session.run(outputs, feed)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        out = torch.jit.load(str(path))(*inputs.values())
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
@pytest.mark.parametrize("recurrent", ["none", "gru"])
def test_a_masked_export_takes_the_mask_as_an_input(
    tmp_path: Path, format: str, recurrent: str
) -> None:
    """probe-mask's file takes ``action_mask`` after ``obs`` (then a recurrent
    policy's memory) and acts as load_policy does with the same mask, never
    choosing a forbidden action."""
    _train(tmp_path, "probe-mask", batches=1, recurrent=recurrent, rnn_hidden=8)
    policy = load_policy(tmp_path)
    module = policy.deterministic_module()
    assert module.input_names[:2] == ("obs", "action_mask")
    path = export_policy(tmp_path, format, output=tmp_path / f"policy.{format}")
    generator = torch.Generator().manual_seed(2)
    memory = torch.zeros(64, policy.model.memory_size)
    chosen = []
    for _ in range(3):
        obs = torch.randn(64, 1, generator=generator)
        mask = torch.rand(64, 3, generator=generator) < 0.5
        mask[torch.arange(64), torch.randint(3, (64,), generator=generator)] = True
        expected = policy(obs, action_mask=mask)
        inputs = {"obs": obs, "action_mask": mask}
        if recurrent != "none":
            inputs["memory"] = memory
        actions, *rest = _run_exported_masked(path, format, inputs, list(module.output_names))
        assert torch.equal(actions, expected)
        assert mask.gather(1, actions.unsqueeze(1)).all(), "the file chose a forbidden action"
        memory = rest[0] if rest else memory
        chosen.append(actions)
    assert len(torch.cat(chosen).unique()) == 3  # every action chosen somewhere: a real test
