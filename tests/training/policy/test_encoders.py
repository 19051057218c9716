"""Encoders (training/encoders.py): a CNN over [C, H, W] pixels, and your own module.

On ``pixel_probe:PixelProbe`` (uint8 6x6 images; tests/training/pixel_probe.py).
"""

from __future__ import annotations

from pathlib import Path

import pixel_probe
import pytest
import torch
from batch_stats import learning_fields

import esper
from esper.config.schema import PPOConfig
from esper.runtime.errors import ConfigError
from esper.telemetry.hub import TelemetryHub
from esper.training import loop as loop_module
from esper.training import run_vectorized_ppo
from esper.training.checkpoint import load_checkpoint
from esper.training.policy.actor_critic import ActorCritic, policy_for
from esper.training.policy.encoders import SmallCNN, pixels_as_float

TASK = "pixel_probe:PixelProbe"
SETTINGS = dict(
    task=TASK,
    encoder="cnn",
    n_envs=8,
    horizon=8,
    n_minibatches=2,
    hidden_sizes=(16,),
    activation="relu",
    device="cpu",
    anneal_batches=4,
    checkpoint_every=1,
)


def train(run_dir: Path, batches: int, start: int = 0, **changes):
    config = PPOConfig(
        **{
            **SETTINGS,
            "run_dir": str(run_dir),
            "n_batches": batches,
            "start_batch": start,
            **changes,
        }
    )
    result = run_vectorized_ppo(config, TelemetryHub())
    assert result.status == "completed"
    return result


def test_a_cnn_run_resumes_bit_for_bit(tmp_path: Path) -> None:
    straight = train(tmp_path / "straight", 4)
    train(tmp_path / "split", 2)
    resumed = train(tmp_path / "split", 2, start=2)
    assert [learning_fields(s) for s in resumed.history] == [
        learning_fields(s) for s in straight.history[2:]
    ]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    assert any(name.startswith("trunk.encoder.convs") for name in a["policy"])
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), name


def test_uint8_pixels_stay_uint8_in_the_rollout_buffer(tmp_path, monkeypatch) -> None:
    buffers = []
    allocate = loop_module.RolloutBuffer.allocate

    def recording(*args, **kwargs):
        buffers.append(allocate(*args, **kwargs))
        return buffers[-1]

    monkeypatch.setattr(loop_module.RolloutBuffer, "allocate", recording)
    train(tmp_path, 1)
    (buffer,) = buffers
    assert buffer.obs.dtype == torch.uint8 and buffer.final_obs.dtype == torch.uint8
    # Raw pixels, one lit (255) per observation: nothing scaled them on the way in.
    assert buffer.obs.shape[-1] == 36
    assert torch.equal(
        buffer.obs.amax(-1), torch.full(buffer.obs.shape[:2], 255, dtype=torch.uint8)
    )
    assert torch.equal(
        (buffer.obs == 255).sum(-1), torch.ones(buffer.obs.shape[:2], dtype=torch.int64)
    )


def test_the_cnn_sees_images_unflattened_and_scaled() -> None:
    policy = policy_for(PPOConfig(**SETTINGS).to_dict(), pixel_probe.PixelProbe.spec)
    seen = []
    cnn = policy.trunk.encoder
    assert isinstance(cnn, SmallCNN)
    cnn.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    env = pixel_probe.PixelProbe(5)
    obs = env.reset(seed=3)  # [5, 36] uint8
    policy.act(obs)
    (images,) = seen
    assert images.shape == (5, 1, 6, 6) and images.dtype == torch.float32
    assert torch.equal(images.flatten(1), obs.float() / 255)
    # GAE values [T, N, obs_dim] chunks: the leading dims come back.
    assert policy.value(torch.stack([obs, obs])).shape == (2, 5)


def test_pixels_as_float_leaves_float_observations_alone() -> None:
    obs = torch.rand(3, 4)
    assert pixels_as_float(obs) is obs
    assert torch.equal(
        pixels_as_float(torch.tensor([0, 255], dtype=torch.uint8)), torch.tensor([0.0, 1.0])
    )


def test_the_mlp_default_keeps_its_parameter_names() -> None:
    """Checkpoints from before encoders load: same modules, no trunk."""
    policy = policy_for(PPOConfig().to_dict(), esper.envs.env_class("cartpole").spec)
    assert policy.trunk is None
    assert sorted(policy.state_dict()) == sorted(
        f"{head}.{layer}.{kind}" for head in ("actor", "critic") for layer in (0, 2, 4)
        for kind in ("weight", "bias")
    )  # fmt: skip


def test_load_policy_rebuilds_the_cnn_without_being_told(tmp_path: Path) -> None:
    train(tmp_path, 2)
    policy = esper.load_policy(tmp_path)
    assert isinstance(policy.model, ActorCritic) and policy.model.encoder == "cnn"
    saved = load_checkpoint(tmp_path / "checkpoints" / "batch_000002.pt")
    for name, tensor in policy.model.state_dict().items():
        assert torch.equal(tensor, saved["policy"][name]), name
    obs = pixel_probe.PixelProbe(6).reset(seed=0)  # [6, 36] uint8
    flat = policy(obs)
    assert flat.shape == (6,)
    assert torch.equal(policy(obs.view(6, *pixel_probe.OBS_SHAPE)), flat)  # [B, C, H, W]
    assert torch.equal(policy(obs[0].view(pixel_probe.OBS_SHAPE)), flat[0])  # [C, H, W]


@pytest.mark.parametrize("format", ["onnx", "torchscript"])
def test_an_exported_cnn_takes_the_task_s_uint8_pixels(tmp_path: Path, format: str) -> None:
    """The file's input is what the environment gives: ``[B, C, H, W]`` uint8."""
    train(tmp_path, 2)
    policy = esper.load_policy(tmp_path)
    path = esper.export(tmp_path, format=format, output=tmp_path / f"policy.{format}")
    images = pixel_probe.PixelProbe(64).reset(seed=0).view(64, *pixel_probe.OBS_SHAPE)
    expected = policy(images)
    if format == "onnx":
        onnxruntime = pytest.importorskip("onnxruntime")
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert session.get_inputs()[0].type == "tensor(uint8)"
        actions = torch.from_numpy(session.run(["action"], {"obs": images.numpy()})[0])
    else:
        actions = torch.jit.load(str(path))(images)
    assert torch.equal(actions, expected) and len(expected.unique()) > 1


def test_a_resume_that_changes_the_encoder_is_refused_naming_it(tmp_path: Path) -> None:
    train(tmp_path, 1)
    with pytest.raises(ConfigError) as info:
        train(tmp_path, 1, start=1, encoder="pixel_probe:tiny_encoder")
    assert info.value.setting == "encoder" and "encoder='cnn'" in info.value.message


def test_a_user_encoder_named_module_factory_trains(tmp_path: Path) -> None:
    pixel_probe.SEEN.clear()
    pixel_probe.BUILT_FOR.clear()
    train(tmp_path, 2, encoder="pixel_probe:tiny_encoder")
    assert pixel_probe.BUILT_FOR[0] == pixel_probe.OBS_SHAPE
    assert {shape[1:] for shape, _ in pixel_probe.SEEN} == {pixel_probe.OBS_SHAPE}
    assert {dtype for _, dtype in pixel_probe.SEEN} == {torch.float32}
    first = load_checkpoint(tmp_path / "checkpoints" / "batch_000001.pt")["policy"]
    second = load_checkpoint(tmp_path / "checkpoints" / "batch_000002.pt")["policy"]
    assert not torch.equal(first["trunk.encoder.conv.weight"], second["trunk.encoder.conv.weight"])
    assert esper.load_policy(tmp_path).model.encoder == "pixel_probe:tiny_encoder"


def test_a_cnn_learns_where_the_pixel_is(tmp_path: Path) -> None:
    """Reward depends on the lit pixel's column: only a policy that reads the
    image's layout earns more than the 0.5 of guessing."""
    result = train(
        tmp_path, 12, n_envs=32, learning_rate=0.01, anneal_lr=False, checkpoint_every=12
    )
    last = [s["episode_return_mean"] for s in result.history[-3:]]
    assert min(last) > 0.9, last


@pytest.mark.parametrize(
    ("changes", "setting", "words"),
    [
        (dict(task="cartpole"), "encoder", "cnn reads images"),
        (dict(encoder="pixel_probe:nowhere"), "encoder", "no callable nowhere"),
        (dict(encoder="no_such_module_here:Factory"), "encoder", "cannot import"),
        (dict(encoder="pixel_probe:not_a_module"), "encoder", "out_features"),
        (dict(normalize_obs=True), "normalize_obs", "images [1, 6, 6]"),
    ],
)
def test_bad_encoder_settings_are_one_line_naming_the_setting(
    tmp_path: Path, changes: dict, setting: str, words: str
) -> None:
    with pytest.raises(ConfigError) as info:
        train(tmp_path, 1, **changes)
    assert info.value.setting == setting and words in info.value.message
    assert "\n" not in info.value.message


def test_an_encoder_that_is_no_name_is_refused_by_the_config() -> None:
    with pytest.raises(ConfigError) as info:
        PPOConfig(encoder="resnet")
    assert info.value.setting == "encoder"
