"""Recurrent policies (``recurrent = "gru" | "lstm"``): memory carried across steps,
forgotten where an episode ends, replayed whole in the update, saved with the run.

The memory probes (``esper.envs.probes``) pin the two halves: ``probe-recall``
needs the memory itself, ``probe-episode-start`` needs it zeroed at episode
starts, and fails when that reset is broken.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from small_runs import one_epoch_settings, train_history, train_probe

import esper
import esper.training.policy.actor_critic as actor_critic_module
import esper.training.ppo as ppo_module
import esper.training.rollout as rollout_module
from esper.config.schema import PPOConfig
from esper.envs import make
from esper.runtime.errors import ConfigError
from esper.telemetry.events import TelemetryEventType
from esper.telemetry.jsonl import read_events
from esper.training.checkpoint import load_checkpoint
from esper.training.episode_stats import EpisodeTracker
from esper.training.fast.capture import compile_step
from esper.training.fast.optimizer import DeviceAdam
from esper.training.gae import batch_advantages
from esper.training.policy.actor_critic import ActorCritic
from esper.training.policy.recurrent import GRUCore, LSTMCore
from esper.training.ppo import SequenceBatch, flatten_batch, minibatch_step
from esper.training.rollout import RolloutBuffer, collect_rollout, rollout_step
from esper.workflows.evaluate import run_episodes

PROBE_BATCHES = 20


def _final_returns(outcome) -> float:
    """The mean episode return over the run's last five batches."""
    returns = [batch["episode_return_mean"] for batch in outcome.history[-5:]]
    return sum(returns) / len(returns)


def _train_probe(task: str, run_dir: Path, recurrent: str) -> float:
    return _final_returns(train_probe(task, run_dir, PROBE_BATCHES, recurrent=recurrent))


EVAL = {"eval_every": PROBE_BATCHES, "eval_episodes": 32}  # one evaluation, at the end


def _evaluations(run_dir: Path) -> list:
    return [
        e.data
        for e in read_events(run_dir / "telemetry.jsonl")
        if e.event_type is TelemetryEventType.EVALUATION_COMPLETED
    ]


def test_a_recurrent_policy_recalls_what_a_feed_forward_one_cannot(tmp_path: Path) -> None:
    """probe-recall pays +1 for naming, one step later, a sign it no longer sees:
    in training, in the in-training evaluator and through ``run_episodes``."""
    outcome = train_probe("probe-recall", tmp_path / "gru", PROBE_BATCHES, recurrent="gru", **EVAL)
    gru = _final_returns(outcome)
    mlp = _train_probe("probe-recall", tmp_path / "mlp", "none")
    assert gru > 0.9, f"probe-recall with a GRU returned {gru:.2f}, want ~1: the memory is lost"
    assert abs(mlp) < 0.4, f"a feed-forward policy cannot recall, yet returned {mlp:.2f}"
    (evaluated,) = _evaluations(tmp_path / "gru")
    assert evaluated.return_mean > 0.9, evaluated
    played = run_episodes(esper.load_policy(tmp_path / "gru"), 32, seed=3, check_every=4)
    assert float(played.returns.mean()) > 0.9


def test_the_memory_reset_at_episode_ends_is_what_tells_an_episode_s_first_step(
    tmp_path: Path, monkeypatch
) -> None:
    """probe-episode-start: learnable only from a memory zeroed where episodes begin.
    With the reset broken (in the rollout and in the update's replay) it is not."""
    intact = _train_probe("probe-episode-start", tmp_path / "intact", "lstm")
    assert intact > 1.8, f"probe-episode-start returned {intact:.2f} of 2: check the reset"
    _an_evaluation_forgets_where_episodes_start(tmp_path / "intact", monkeypatch)
    monkeypatch.setattr(rollout_module, "forget_ended", lambda memory, ended: memory)
    monkeypatch.setattr(ppo_module, "episode_starts", torch.zeros_like)
    broken = _train_probe("probe-episode-start", tmp_path / "broken", "lstm")
    assert broken < 0.6, f"with no reset the probe still returned {broken:.2f}: it tests nothing"


def _an_evaluation_forgets_where_episodes_start(run_dir: Path, monkeypatch) -> None:
    """The trained probe-episode-start policy plays its episodes perfectly (return
    = length) through ``run_episodes`` (8 episodes per copy) and the in-training
    evaluator (its second evaluation, after one that leaves memory behind), and
    loses ~2 an episode in both with the evaluation's memory reset broken."""
    policy = esper.load_policy(run_dir)

    def shortfall() -> float:  # mean of length - return: 0 for perfect play
        played = run_episodes(policy, 32, seed=3, copies=4, check_every=4)
        return float((played.lengths - played.returns).mean())

    def evaluated_shortfall() -> float:
        resume = {"run_dir": str(run_dir), "resume": True, "eval_every": 1}
        esper.train(
            "probe-episode-start", 2, eval_episodes=8, device="cpu", progress=False, **resume
        )
        last = _evaluations(run_dir)[-1]
        return last.length_mean - last.return_mean

    assert shortfall() < 0.3 and evaluated_shortfall() < 0.3
    with monkeypatch.context() as broken:  # the evaluation's reset only; training keeps its own
        broken.setattr(actor_critic_module, "forget_ended", lambda memory, ended: memory)
        policy.reset()
        assert shortfall() > 1.0 and evaluated_shortfall() > 1.0


@pytest.mark.parametrize("core", [GRUCore, LSTMCore])
def test_the_cells_are_torch_s_gru_and_lstm(core) -> None:
    torch.manual_seed(0)
    ours = core(5, 7)
    theirs = (torch.nn.GRUCell if core is GRUCore else torch.nn.LSTMCell)(5, 7)
    with torch.no_grad():
        theirs.weight_ih.copy_(ours.input_gates.weight)
        theirs.bias_ih.copy_(ours.input_gates.bias)
        theirs.weight_hh.copy_(ours.memory_gates.weight)
        theirs.bias_hh.copy_(torch.randn_like(theirs.bias_hh))
        ours.memory_gates.bias.copy_(theirs.bias_hh)
    x, h, c = torch.randn(3, 5), torch.randn(3, 7), torch.randn(3, 7)
    if core is GRUCore:
        out, memory = ours.step(x, h)
        torch.testing.assert_close(out, theirs(x, h))
        torch.testing.assert_close(memory, out)
    else:
        out, memory = ours.step(x, torch.cat((h, c), dim=1))
        want_h, want_c = theirs(x, (h, c))
        torch.testing.assert_close(out, want_h)
        torch.testing.assert_close(memory, torch.cat((want_h, want_c), dim=1))


class RecurrentRollout:
    """One rollout of a recurrent policy on ``cartpole-no-velocity`` with
    episodes ending inside it (random early policy: ~20-step episodes)."""

    def __init__(self, recurrent: str = "gru", n_envs: int = 8, horizon: int = 48) -> None:
        torch.manual_seed(0)
        self.env = make("cartpole-no-velocity", n_envs, "cpu", seed=0)
        self.policy = ActorCritic(
            2, self.env.action_space, (16,), recurrent=recurrent, rnn_hidden=8
        )
        self.buffer = RolloutBuffer.allocate(
            horizon, n_envs, 2, (), "cpu", memory_size=self.policy.memory_size
        )
        self.episodes = EpisodeTracker(n_envs, torch.device("cpu"), horizon)
        self.memory = self.policy.initial_memory(n_envs)
        self.memory.normal_()  # a batch may start mid-episode, from any memory
        self.obs = self.env.reset(seed=0)

    def collect(self) -> torch.Tensor:
        return collect_rollout(
            self.env, self.policy, self.buffer, self.obs, None, self.episodes, memory=self.memory
        )


@pytest.mark.parametrize("recurrent", ["gru", "lstm"])
def test_the_update_replays_exactly_what_the_rollout_acted_from(recurrent: str) -> None:
    """Before any update, replaying each sequence from its first memory, zeroed at
    the same episode starts, gives back the rollout's log-probabilities and values."""
    rollout = RecurrentRollout(recurrent)
    first_memory = rollout.memory.clone()
    last_obs = rollout.collect()
    ended = rollout.buffer.terminated | rollout.buffer.truncated
    assert ended[:-1].any(), "the test needs episodes that end inside the batch"
    assert torch.equal(rollout.buffer.first_memory, first_memory)
    advantages, returns = batch_advantages(
        rollout.buffer, last_obs, lambda obs: rollout.policy.value(obs, rollout.memory), 0.99, 0.95
    )
    batch = flatten_batch(rollout.buffer, advantages, returns)
    assert isinstance(batch, SequenceBatch) and batch.units == 8
    with torch.no_grad():
        log_probs, _, values = batch.evaluate(rollout.policy)
        # any minibatch of whole sequences, in any order, replays the same
        order = torch.tensor([5, 2, 7, 0, 1, 3, 6, 4])
        shuffled = batch.permuted(order).rows(48, 48 * 3)
        part_log_probs, _, _ = shuffled.evaluate(rollout.policy)
    torch.testing.assert_close(log_probs, batch.log_probs, rtol=0, atol=1e-5)
    torch.testing.assert_close(values, batch.values, rtol=0, atol=1e-5)
    torch.testing.assert_close(part_log_probs, shuffled.log_probs, rtol=0, atol=1e-5)
    # the memory after an episode's last step is zero, a continuing one's is not
    assert torch.all(rollout.memory[ended[-1]] == 0) and torch.all(rollout.memory[~ended[-1]] != 0)


def test_truncated_episodes_bootstrap_from_the_memory_they_ended_with() -> None:
    rollout = RecurrentRollout()
    rollout.env.elapsed_steps.fill_(495)  # every copy reaches the time limit within the batch
    rollout.collect()
    truncated = rollout.buffer.truncated
    assert truncated.any()
    t, env = (int(i) for i in truncated.nonzero()[0])
    # the memory the step ended with: replay the copy's sequence up to step t
    replayed = rollout.buffer.first_memory[env : env + 1]
    starts = (rollout.buffer.terminated | rollout.buffer.truncated)[:, env]
    with torch.no_grad():
        for step in range(t + 1):
            if step and starts[step - 1]:
                replayed = torch.zeros_like(replayed)
            _, replayed = rollout.policy.act_deterministic(
                rollout.buffer.obs[step, env : env + 1], replayed
            )
        want = rollout.policy.value(rollout.buffer.final_obs[t, env : env + 1], replayed)
    torch.testing.assert_close(rollout.buffer.final_values[t, env : env + 1], want)


def _train(run_dir: Path, episodes: int, start: int = 0, **changes) -> list[dict]:
    policy = dict(task="cartpole-no-velocity", recurrent="gru", rnn_hidden=16)
    return train_history(run_dir, episodes, start, **{**policy, **changes})


@pytest.mark.parametrize("recurrent", ["gru", "lstm"])
def test_a_recurrent_run_resumes_bit_for_bit(tmp_path: Path, recurrent: str) -> None:
    straight = _train(tmp_path / "straight", 4, recurrent=recurrent)
    _train(tmp_path / "split", 2, recurrent=recurrent)
    resumed = _train(tmp_path / "split", 2, start=2, recurrent=recurrent)
    assert resumed == straight[2:]
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "batch_000004.pt")
    b = load_checkpoint(tmp_path / "split" / "checkpoints" / "batch_000004.pt")
    for name, tensor in a["policy"].items():
        assert torch.equal(tensor, b["policy"][name]), name
    assert a["memory"].shape == (8, 16 if recurrent == "gru" else 32)
    assert torch.equal(a["memory"], b["memory"])


def test_a_resume_that_changes_the_core_is_refused_naming_it(tmp_path: Path) -> None:
    _train(tmp_path, 1)
    with pytest.raises(ConfigError, match="recurrent='gru'") as caught:
        _train(tmp_path, 1, start=1, recurrent="lstm")
    assert caught.value.setting == "recurrent"


def test_minibatches_must_hold_whole_sequences() -> None:
    with pytest.raises(ConfigError, match="whole environments' sequences") as caught:
        PPOConfig(n_envs=6, horizon=8, n_minibatches=4, recurrent="gru")
    assert caught.value.setting == "n_minibatches"
    with pytest.raises(ConfigError, match="recurrent"):
        PPOConfig(recurrent="transformer")


def test_load_policy_remembers_and_forgets_where_told(tmp_path: Path) -> None:
    _train(tmp_path, 1)
    policy = esper.load_policy(tmp_path)
    assert policy.model.recurrent == "gru" and policy.memory is None
    obs = torch.tensor([[0.01, 0.02], [0.0, -0.03]])
    policy(obs)
    remembered = policy.memory.clone()
    assert remembered.shape == (2, 16) and torch.all(remembered != 0)
    policy(obs, episode_start=torch.tensor([True, False]))
    # copy 0 started afresh: its memory is one step's from zero again
    torch.testing.assert_close(policy.memory[0], remembered[0])
    assert not torch.equal(policy.memory[1], remembered[1])
    policy.reset()
    assert policy.memory is None


def test_load_policy_refuses_to_guess_what_to_remember(tmp_path: Path) -> None:
    """A wrong ``episode_start`` length, or another number of copies while their
    episodes run on, is one clear ValueError, not a raw RuntimeError or a silent
    reset of the memory."""
    _train(tmp_path, 1)
    policy = esper.load_policy(tmp_path)
    two, three = torch.zeros(2, 2), torch.zeros(3, 2)
    with pytest.raises(ValueError, match="episode_start has 3 entries for 2 observations"):
        policy(two, episode_start=torch.tensor([True, False, True]))
    policy(two)
    with pytest.raises(ValueError, match="remembers 2 copies and got 3 observations: call reset"):
        policy(three)
    with pytest.raises(ValueError, match="remembers 2 copies"):
        policy(three, episode_start=torch.tensor([True, False, True]))
    policy(three, episode_start=torch.ones(3, dtype=torch.bool))  # every copy starts afresh
    assert policy.memory.shape[0] == 3
    policy.reset()
    policy(two)  # after a reset any number of copies
    assert policy.memory.shape[0] == 2


def test_evaluation_runs_a_recurrent_policy(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _train(run, 1)
    policy = esper.load_policy(run)
    episodes = run_episodes(policy, 5, seed=0, copies=2, check_every=16)
    assert episodes.lengths.shape == (5,) and bool((episodes.lengths > 0).all())


def _sequence_minibatch(policy: ActorCritic, sequences: int = 4, horizon: int = 8):
    generator = torch.Generator().manual_seed(0)
    n = sequences * horizon
    return SequenceBatch(
        obs=torch.randn(n, 2, generator=generator),
        actions=torch.randint(0, 2, (n,), generator=generator),
        log_probs=-0.69 + 0.05 * torch.randn(n, generator=generator),
        values=torch.randn(n, generator=generator),
        advantages=torch.randn(n, generator=generator),
        returns=torch.randn(n, generator=generator),
        memory=torch.zeros(sequences, policy.memory_size),
        starts=torch.rand(n, generator=generator) < 0.1,
    )


def test_the_recurrent_steps_compile_whole() -> None:
    """No host read and no branch on a value anywhere in a recurrent batch's steps:
    the rollout step and the minibatch step (a whole-sequence replay, its backward
    and Adam) each trace as one graph, as a CUDA graph needs."""
    import torch._dynamo

    torch._dynamo.reset()
    rollout = RecurrentRollout(horizon=4)
    noise = rollout.policy.sample_noise(8)
    fresh = rollout.env.draw_initial_states(1)[0]
    slot, row = rollout.buffer.step_views()[0], rollout.episodes.rows()[0]
    with torch.no_grad():
        compile_step(rollout_step, backend="eager")(
            rollout.env, rollout.policy, slot, rollout.obs, noise, fresh, row, None,
            rollout.episodes, None, rollout.memory,
        )  # fmt: skip
    settings = one_epoch_settings(32)
    adam = DeviceAdam(rollout.policy.parameters(), lr=1e-3, eps=1e-5)
    step = compile_step(minibatch_step, backend="eager", autograd=True)
    step(rollout.policy, adam, _sequence_minibatch(rollout.policy), settings)
    assert int(adam.step_count) == 1
    torch._dynamo.reset()


def test_a_batch_carries_the_memory_in_place(tmp_path: Path) -> None:
    """A captured rollout reads and writes the memory at one address: a batch
    updates it in place, never rebinds it."""
    from esper.runs.directory import RunDir
    from esper.training.interrupt import StopRequest
    from esper.training.loop import train_batch
    from esper.training.state import build_state

    config = PPOConfig(
        task="cartpole-no-velocity", n_envs=8, horizon=16, n_minibatches=2, update_epochs=1,
        recurrent="lstm", rnn_hidden=8, device="cpu", run_dir=str(tmp_path),
    )  # fmt: skip
    state = build_state(config, torch.device("cpu"), RunDir(tmp_path))
    buffer = RolloutBuffer.allocate(16, 8, 2, (), "cpu", memory_size=16)
    state.memory.normal_()  # a batch that starts mid-episode, from a memory that is not zero
    address, before = state.memory.data_ptr(), state.memory.clone()
    train_batch(config, state, buffer, StopRequest())
    assert state.memory.data_ptr() == address and not torch.equal(state.memory, before)
    assert torch.equal(buffer.first_memory, before)
