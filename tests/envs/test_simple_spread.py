"""MPE's simple_spread on tensors against the ``mpe2`` package, step for step.

Each of our copies has a reference ``mpe2.simple_spread_v3.parallel_env()``.
At every episode's start the reference is reset (seeded once, then on its own
random stream) and its world (agent positions and velocities, landmarks) is
written into our copy's state; then both take the same random actions for the
whole episode, and every agent's observation, reward and the copy's
termination and truncation must agree. The state is float64, as mpe2 computes.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from esper.envs import make
from esper.envs.simple_spread import (
    AGENT_SIZE,
    COLLIDING_COLOR,
    MAX_CYCLES,
    N_AGENTS,
    OBS_DIM,
    STATE_DIM,
    SimpleSpread,
)
from esper.runtime.host_sync import host_reads_forbidden

OTHERS = slice(10, 14)  # the other agents' relative positions in an observation
N_COPIES = 32
EPISODES = 3


def world_state(reference) -> np.ndarray:
    """mpe2's world as our state row: agent positions, agent velocities, landmarks."""
    world = reference.unwrapped.world
    return np.concatenate(
        [a.state.p_pos for a in world.agents]
        + [a.state.p_vel for a in world.agents]
        + [lm.state.p_pos for lm in world.landmarks]
    )


def by_agent(reference, values: dict) -> np.ndarray:
    return np.stack([np.asarray(values[agent]) for agent in reference.possible_agents])


def overlaps(obs: torch.Tensor) -> torch.Tensor:
    """``[n, agents, others]``: which other agents each agent sees closer than two radii."""
    others = obs[:, :, OTHERS].reshape(*obs.shape[:2], N_AGENTS - 1, 2)
    return others.norm(dim=-1) < 2 * AGENT_SIZE


def run_against_mpe2(dtype: torch.dtype, episodes: int, seed: int) -> dict[str, float]:
    """The largest differences over ``episodes`` of random play, and how many
    agent-steps were spent overlapping another agent."""
    simple_spread_v3 = pytest.importorskip("mpe2.simple_spread_v3")
    references = [simple_spread_v3.parallel_env() for _ in range(N_COPIES)]
    env = SimpleSpread(N_COPIES, seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed)
    worst = {"obs": 0.0, "reward": 0.0}
    overlapping = 0
    for episode in range(episodes):
        starts = [
            ref.reset(seed=seed + i if episode == 0 else None)[0]
            for i, ref in enumerate(references)
        ]
        env.reset()
        env.state.copy_(torch.tensor(np.stack([world_state(ref) for ref in references])))
        theirs = np.stack([by_agent(ref, obs) for ref, obs in zip(references, starts, strict=True)])
        worst["obs"] = max(worst["obs"], np.abs(env.observe(env.state).numpy() - theirs).max())
        for _ in range(MAX_CYCLES):
            actions = rng.integers(0, 5, (N_COPIES, N_AGENTS))
            _, reward, terminated, truncated, info = env.step(torch.as_tensor(actions))
            for i, ref in enumerate(references):
                step = ref.step(dict(zip(ref.possible_agents, actions[i].tolist(), strict=True)))
                obs, rewards, terminations, truncations, _ = step
                assert by_agent(ref, terminations).tolist() == [bool(terminated[i])] * N_AGENTS
                assert by_agent(ref, truncations).tolist() == [bool(truncated[i])] * N_AGENTS
                ours = info["final_obs"][i].numpy()
                worst["obs"] = max(worst["obs"], np.abs(ours - by_agent(ref, obs)).max())
                gap = np.abs(reward[i].numpy() - by_agent(ref, rewards)).max()
                worst["reward"] = max(worst["reward"], gap)
            overlapping += int(overlaps(info["final_obs"]).sum())
        assert truncated.all() and not references[0].agents  # every episode is 25 steps
    worst["overlapping"] = overlapping
    return worst


def test_simple_spread_matches_mpe2_step_for_step() -> None:
    worst = run_against_mpe2(torch.float64, EPISODES, seed=0)
    assert worst["overlapping"] > 0, "the random play never brought two agents together"
    # float64 physics alike; what is left is mpe2's cast of its float64 to float32
    assert worst["obs"] < 1e-6 and worst["reward"] < 1e-6, worst


def test_simple_spread_in_float32_stays_close_to_mpe2() -> None:
    """The training dtype: float32 rounding, not a different rule."""
    worst = run_against_mpe2(torch.float32, 1, seed=7)
    assert worst["obs"] < 1e-4 and worst["reward"] < 1e-4, worst


def test_simple_spread_shapes_and_rewards_per_agent() -> None:
    env = make("simple-spread", 5, "cpu", seed=1)
    assert env.spec.n_agents == N_AGENTS and env.spec.obs_dim == OBS_DIM
    assert env.state.shape == (5, STATE_DIM)
    obs = env.reset(seed=1)
    assert obs.shape == (5, N_AGENTS, OBS_DIM) and obs.dtype == torch.float32
    assert (obs[:, :, :2] == 0).all()  # agents start at rest
    assert (obs[:, :, -4:] == 0).all()  # silent agents: the communication slots are zero
    obs, reward, terminated, truncated, info = env.step(torch.zeros(5, N_AGENTS, dtype=torch.long))
    assert reward.shape == (5, N_AGENTS) and terminated.shape == truncated.shape == (5,)
    assert info["final_obs"].shape == (5, N_AGENTS, OBS_DIM)
    assert env.global_state(env.state).shape == (5, N_AGENTS * OBS_DIM)


def test_colliding_agents_pay_their_own_penalty() -> None:
    """Two agents overlapping, the third far away: the pair each pay
    ``local_ratio`` more than the third (everyone shares the landmark term)."""
    env = SimpleSpread(1, dtype=torch.float64)
    env.reset()
    pos = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.9, 0.9]], dtype=torch.float64)
    env.state[0, :6] = pos.flatten()
    env.state[0, 6:12] = 0
    _, reward, *_ = env.step(torch.zeros(1, N_AGENTS, dtype=torch.long))
    assert reward[0, 0] == pytest.approx(reward[0, 2].item() - 0.5)
    assert reward[0, 1] == pytest.approx(reward[0, 2].item() - 0.5)
    # the contact pushed them apart: the first agent now moves to -x, the second to +x
    velocity = env.state[0, 6:12].view(3, 2)
    assert velocity[0, 0] < 0 < velocity[1, 0] and (velocity[2] == 0).all()


def test_a_team_reward_with_local_ratio_zero() -> None:
    env = SimpleSpread(8, seed=2, local_ratio=0.0)
    env.reset()
    _, reward, *_ = env.step(random_actions(1, 8)[0])
    assert (reward == reward[:, :1]).all()


def random_actions(steps: int, n: int) -> torch.Tensor:
    return torch.randint(0, 5, (steps, n, N_AGENTS), generator=torch.Generator().manual_seed(0))


def test_steps_read_nothing_on_the_host() -> None:
    env = make("simple-spread", 64, "cpu", seed=0)
    env.reset(seed=0)
    actions = random_actions(20, 64)
    fresh = env.draw_initial_states(10)
    with host_reads_forbidden():
        for t in range(10):
            env.step(actions[t])
            env.step(actions[10 + t], fresh[t])


@pytest.mark.slow
def test_the_dynamics_compile_to_one_graph() -> None:
    env = make("simple-spread", 64, "cpu", seed=0)
    env.reset(seed=0)
    actions = random_actions(1, 64)
    state = env.state.clone()
    eager = env.dynamics(state, actions[0])
    compiled = torch.compile(env.dynamics, fullgraph=True, dynamic=False)(state, actions[0])
    for a, b in zip(eager, compiled, strict=True):
        torch.testing.assert_close(a, b)


def test_render_shows_agents_landmarks_and_collisions() -> None:
    env = SimpleSpread(2, seed=3)
    env.reset()
    frame = env.render(1)
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert frame.shape[0] % 2 == 0 and frame.shape[1] % 2 == 0
    assert not (frame == COLLIDING_COLOR).all(-1).any()
    env.state[1, :6] = torch.tensor([0.0, 0.0, AGENT_SIZE, 0.0, 0.8, 0.8])  # two overlap
    frame = env.render(1)
    assert (frame == COLLIDING_COLOR).all(-1).any()
    assert (frame != frame[0, 0]).any(-1).sum() > 100  # something is drawn


def test_an_episode_records_as_a_video(tmp_path) -> None:
    """``esper eval --video``'s path for a task that draws itself: one frame a step."""
    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    from esper.envs.video import record_video

    def still(obs, starts, action_mask=None):  # the policy's view: a row per agent
        return torch.zeros(obs.shape[0], dtype=torch.int64)

    path = tmp_path / "spread.mp4"
    assert record_video("simple-spread", still, path, seed=0) == MAX_CYCLES
    frame = SimpleSpread(1).render(0)
    assert imageio.get_reader(path).get_data(0).shape == frame.shape
