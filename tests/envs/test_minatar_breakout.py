"""MinAtar's Breakout on tensors against the ``minatar`` package, step for step.

The differential tests follow the recipe of ``gym_reference``: each of our
copies has a reference ``minatar.Environment("breakout")`` put into the same
state (its ``Env``'s fields written from our ``state`` row), both take the
same action, and the observation, reward, terminal flag and every state field
must agree. The copies then run on along their own trajectories; when one of
ours ends and resets itself, its fresh state is written into its reference.
Sticky actions are compared too: the reference wrapper's random draw is
replaced by the one our state carries (``sticky_draw``).
"""

from __future__ import annotations

import sys
from types import ModuleType

import numpy as np
import pytest
import torch

from esper.envs import make
from esper.envs.minatar_breakout import (
    BRICK_ROWS,
    BRICKS,
    LAST_ACTION,
    MAX_EPISODE_STEPS,
    MINIMAL_ACTIONS,
    OBS_SHAPE,
    PADDLE,
    STATE_FIELDS,
    STICKY_DRAW,
    STRIKE,
    MinAtarBreakout,
)
from esper.runtime.host_sync import host_reads_forbidden

GAME_FIELDS = LAST_ACTION  # state columns [0, GAME_FIELDS) are MinAtar's Env's own
SCALARS = ("ball_x", "ball_y", "ball_dir", "pos")
FLAGS = ("strike", "last_x", "last_y", "terminal")


def import_minatar() -> ModuleType:
    """``minatar``, or a skip without it. Its import of matplotlib and seaborn
    (only for drawing the game; seconds of scipy and pandas) is made to fail,
    which minatar allows: it logs a warning and plays on."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("matplotlib", "seaborn"):
            patch.setitem(sys.modules, name, None)
        return pytest.importorskip("minatar")


class Draw:
    """Stands in for the wrapper's ``RandomState``: ``rand()`` is our copy's draw."""

    def __init__(self) -> None:
        self.value = 1.0

    def rand(self) -> float:
        return self.value


class Reference:
    """One ``minatar.Environment("breakout")`` per copy of ours."""

    def __init__(self, n: int, sticky_action_prob: float) -> None:
        minatar = import_minatar()
        self.envs = []
        for seed in range(n):
            env = minatar.Environment("breakout", sticky_action_prob=sticky_action_prob)
            env.seed(seed)
            env.random = Draw()  # the wrapper's sticky-action draw only
            self.envs.append(env)
        assert self.envs[0].minimal_action_set() == list(MINIMAL_ACTIONS)

    def load(self, states: torch.Tensor, rows: np.ndarray, last_action: bool) -> None:
        """Write our states' rows into the references: the game's fields, and the
        wrapper's last action when ``last_action`` (at the start; a reset keeps it)."""
        for i in rows:
            row = states[i].double().numpy()
            game = self.envs[i].env
            values = dict(zip(STATE_FIELDS, row.tolist(), strict=True))
            for name in ("ball_x", "ball_y", "ball_dir", "pos", "last_x", "last_y"):
                setattr(game, name, int(values[name]))
            game.strike = bool(values["strike"])
            game.terminal = bool(values["terminal"])
            game.brick_map = np.zeros((10, 10))
            game.brick_map[BRICK_ROWS[0] : BRICK_ROWS[1]] = row[BRICKS].reshape(-1, 10)
            if last_action:
                self.envs[i].last_action = MINIMAL_ACTIONS[int(values["last_action"])]

    def step(self, actions: torch.Tensor, draws: torch.Tensor) -> dict[str, np.ndarray]:
        out: dict[str, list] = {"state": [], "obs": [], "reward": [], "terminal": []}
        for env, action, draw in zip(self.envs, actions.tolist(), draws.tolist(), strict=True):
            env.random.value = draw
            reward, terminal = env.act(MINIMAL_ACTIONS[action])
            game = env.env
            bricks = game.brick_map[BRICK_ROWS[0] : BRICK_ROWS[1]].reshape(-1)
            assert game.brick_map.sum() == bricks.sum()  # no brick outside rows 1-3
            out["state"].append(
                [*(getattr(game, f) for f in SCALARS), *bricks, *(getattr(game, f) for f in FLAGS),
                 MINIMAL_ACTIONS.index(env.last_action)]
            )  # fmt: skip
            out["obs"].append(env.state().transpose(2, 0, 1).reshape(-1))
            out["reward"].append(reward)
            out["terminal"].append(terminal)
        return {key: np.array(value, dtype=np.float64) for key, value in out.items()}


def edge_states(generator: torch.Generator, n: int) -> torch.Tensor:
    """States MinAtar's rules are defined on, weighted to the rare branches: the
    ball near the paddle or among sparse bricks, the brick rows nearly or wholly
    cleared (which refills them), a strike carried over from the step before."""
    env = MinAtarBreakout(n, seed=0)
    state = env.initial_state(n)

    def ints(low: int, high: int) -> torch.Tensor:
        return torch.randint(low, high, (n,), generator=generator).float()

    state[:, 0] = ints(0, 10)  # ball_x
    state[:, 1] = torch.where(torch.rand(n, generator=generator) < 0.5, ints(0, 9), ints(6, 9))
    state[:, 2] = ints(0, 4)  # ball_dir
    state[:, PADDLE] = ints(0, 10)
    density = torch.tensor([0.0, 0.05, 0.3, 1.0])[torch.randint(0, 4, (n, 1), generator=generator)]
    state[:, BRICKS] = (torch.rand(n, 30, generator=generator) < density).float()
    state[:, STRIKE] = (torch.rand(n, generator=generator) < 0.3).float()
    state[:, 35] = (state[:, 0] + ints(-1, 2)).clamp(0, 9)  # last_x: only ever written
    state[:, 36] = (state[:, 1] + ints(-1, 2)).clamp(0, 8)  # last_y
    state[:, LAST_ACTION] = ints(0, 3)
    return state


def assert_equal(ours: torch.Tensor, theirs: np.ndarray, what: str) -> None:
    mismatch = np.nonzero((ours.double().numpy() != theirs).reshape(len(theirs), -1).any(1))[0]
    assert mismatch.size == 0, f"{what} differs from minatar's in copies {mismatch[:8].tolist()}"


@pytest.mark.parametrize("sticky_action_prob", [0.0, 0.1])
def test_steps_match_minatar(sticky_action_prob: float) -> None:
    """64 copies, half from reset and half from edge states, 200 random steps."""
    n, steps = 64, 200
    env = MinAtarBreakout(n, seed=0, sticky_action_prob=sticky_action_prob)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    env.state[n // 2 :] = edge_states(generator, n - n // 2)
    reference = Reference(n, sticky_action_prob)
    reference.load(env.state, np.arange(n), last_action=True)
    seen = dict.fromkeys(("reward", "terminal", "refill", "pass_into_brick", "sticky"), 0)
    for _ in range(steps):
        actions = torch.randint(0, 3, (n,), generator=generator)
        before = env.state.clone()
        theirs = reference.step(actions, before[:, STICKY_DRAW])
        _, reward, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        assert_equal(info["final_obs"], theirs["obs"], "observation")
        assert_equal(reward, theirs["reward"], "reward")
        assert_equal(terminated, theirs["terminal"], "terminal")
        assert not truncated.any()
        # The game's fields each copy reached (a finished one's, before its reset) and
        # the action it took, which the wrapper (and our state) keep over a reset.
        taken = env.state[:, LAST_ACTION]
        next_state, _, _ = env.dynamics(before, taken)
        assert torch.equal(env.state[~done, :GAME_FIELDS], next_state[~done, :GAME_FIELDS])
        reached = torch.cat((next_state[:, :GAME_FIELDS], taken.unsqueeze(1)), dim=1)
        assert_equal(reached, theirs["state"], "state")
        seen["reward"] += int(reward.sum())
        seen["terminal"] += int(terminated.sum())
        bricks_before, bricks_after = before[:, BRICKS].sum(1), next_state[:, BRICKS].sum(1)
        seen["refill"] += int(((bricks_before == 0) & (bricks_after == 30)).sum())
        seen["pass_into_brick"] += int((before[:, STRIKE] * next_state[:, STRIKE]).sum())
        seen["sticky"] += int((taken != actions).sum())
        reference.load(env.state, np.nonzero(done.numpy())[0], last_action=False)
    assert seen["reward"] > 100 and seen["terminal"] > 100, seen
    assert seen["refill"] > 0 and seen["pass_into_brick"] > 0, seen
    assert (seen["sticky"] > 0) == (sticky_action_prob > 0), seen


def test_initial_states_are_minatars() -> None:
    """Our resets are MinAtar's two start states, about half each."""
    minatar = import_minatar()
    theirs = set()
    for seed in range(20):
        game = minatar.Environment("breakout", sticky_action_prob=0.0)
        game.seed(seed)
        game.reset()
        theirs.add(tuple(game.state().transpose(2, 0, 1).reshape(-1).astype(float)))
    assert len(theirs) == 2
    env = MinAtarBreakout(4096, seed=1)
    obs = env.reset(seed=1)
    ours = {tuple(row) for row in obs.double().numpy().tolist()}
    assert ours == theirs
    right = env.state[:, 0] == 9
    assert 0.45 < right.float().mean() < 0.55
    assert (env.state[:, LAST_ACTION] == 0).all()  # the wrapper's first last action is a no-op


def test_observation_is_minatars_image_channels_first() -> None:
    env = make("minatar-breakout", 2, "cpu", seed=0)
    obs = env.reset(seed=0)
    assert env.obs_dim == 400 and env.obs_shape == OBS_SHAPE == (4, 10, 10)
    image = obs.view(-1, *env.obs_shape)
    assert image.dtype == torch.float32
    assert image[:, 0, 9, 4].eq(1).all() and image[:, 0].sum((1, 2)).eq(1).all()  # paddle
    assert image[:, 3, 1:4].eq(1).all() and image[:, 3].sum((1, 2)).eq(30).all()  # bricks
    assert image[:, 1, 3].sum(1).eq(1).all()  # the ball on row 3


def test_finished_copies_reset_with_final_obs() -> None:
    n = 256
    env = MinAtarBreakout(n, seed=2)
    env.reset(seed=2)
    generator = torch.Generator().manual_seed(2)
    env.state.copy_(edge_states(generator, n))
    env.elapsed_steps[: n // 4] = MAX_EPISODE_STEPS - 1  # a quarter truncate
    actions = torch.randint(0, 3, (n,), generator=generator)
    before = env.state.clone()
    obs, _, terminated, truncated, info = env.step(actions)
    next_state, _, _ = env.dynamics(before, env.state[:, LAST_ACTION])
    done = terminated | truncated
    assert truncated[: n // 4].all() and not truncated[n // 4 :].any()
    assert terminated.any() and not done.all()
    assert torch.equal(info["final_obs"], env.observe(next_state))
    fresh = dict(zip(STATE_FIELDS, env.state[done].T, strict=True))
    assert ((fresh["ball_x"] == 0) | (fresh["ball_x"] == 9)).all()
    assert torch.equal(fresh["ball_dir"], 2 + (fresh["ball_x"] == 9).float())
    assert torch.equal(fresh["last_x"], fresh["ball_x"])
    assert (env.state[done][:, BRICKS] == 1).all()
    for name, value in {"ball_y": 3, "last_y": 3, "pos": 4, "strike": 0, "terminal": 0}.items():
        assert (fresh[name] == value).all(), name
    assert torch.equal(obs[done], env.observe(env.state[done]))
    assert torch.equal(obs[~done], info["final_obs"][~done])
    assert torch.equal(env.state[~done, :LAST_ACTION], next_state[~done, :LAST_ACTION])
    assert (env.elapsed_steps[done] == 0).all() and (env.elapsed_steps[~done] > 0).all()


def test_sticky_actions() -> None:
    """With probability p a step repeats the previous action, drawn per copy."""
    always = MinAtarBreakout(64, seed=0, sticky_action_prob=1.0)
    always.reset(seed=0)
    for _ in range(5):
        always.step(torch.full((64,), 2))  # "right", never taken: the first action is a no-op
    assert (always.state[:, PADDLE] == 4).all()
    n = 1024
    env = MinAtarBreakout(n, seed=0)
    env.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    repeated = 0
    for _ in range(10):
        last = env.state[:, LAST_ACTION].clone()
        actions = torch.randint(0, 3, (n,), generator=generator)
        env.step(actions)
        taken = env.state[:, LAST_ACTION]
        repeated += int((taken != actions).sum())
        assert torch.equal(taken != actions, (taken == last) & (last != actions))
    assert 0.07 < repeated / (10 * n) / (2 / 3) < 0.13  # sticky 10% of the time, 2/3 differ
    with pytest.raises(ValueError, match="sticky_action_prob"):
        MinAtarBreakout(1, sticky_action_prob=1.5)


def run(env: MinAtarBreakout, steps: int = 60) -> torch.Tensor:
    generator = torch.Generator().manual_seed(4)
    seen = [env.reset(seed=7)]
    for _ in range(steps):
        seen.append(env.step(torch.randint(0, 3, (env.num_envs,), generator=generator))[0])
    return torch.stack(seen)


def test_reset_seed_is_reproducible() -> None:
    first = run(MinAtarBreakout(16, seed=0))
    assert torch.equal(first, run(MinAtarBreakout(16, seed=123)))
    other = MinAtarBreakout(16, seed=0)
    other.reset(seed=8)
    generator = torch.Generator().manual_seed(4)
    steps = [other.step(torch.randint(0, 3, (16,), generator=generator))[0] for _ in range(60)]
    assert not torch.equal(torch.stack(steps), first[1:])


def test_state_dict_round_trip_continues_the_episodes() -> None:
    env = MinAtarBreakout(32, seed=5)
    env.reset(seed=5)
    generator = torch.Generator().manual_seed(5)
    actions = [torch.randint(0, 3, (32,), generator=generator) for _ in range(60)]
    for a in actions[:30]:
        env.step(a)
    saved = env.state_dict()
    restored = MinAtarBreakout(32, seed=99)
    restored.reset(seed=99)
    restored.load_state_dict(saved)
    for a in actions[30:]:
        for one, other in zip(env.step(a)[:4], restored.step(a)[:4], strict=True):
            assert torch.equal(one, other)


def test_time_limit_truncates_exactly() -> None:
    env = MinAtarBreakout(2, seed=3, sticky_action_prob=0.0)
    env.reset(seed=3)
    env.elapsed_steps[0] = MAX_EPISODE_STEPS - 1
    env.elapsed_steps[1] = MAX_EPISODE_STEPS - 2
    _, _, terminated, truncated, _ = env.step(torch.zeros(2, dtype=torch.int64))
    assert truncated.tolist() == [True, False] and not terminated.any()
    assert env.elapsed_steps.tolist() == [0, MAX_EPISODE_STEPS - 1]


def test_steps_read_nothing_on_the_host() -> None:
    env = make("minatar-breakout", 64, "cpu", seed=0)
    env.reset(seed=0)
    actions = torch.randint(0, 3, (20, 64))
    fresh = env.draw_initial_states(10)
    with host_reads_forbidden():
        for t in range(10):
            env.step(actions[t])
            env.step(actions[10 + t], fresh[t])


def test_breakout_draws_its_board_and_records_videos(tmp_path) -> None:
    """``BatchedEnv.render``, the hook a task defines to be recorded: Breakout's
    board, one colour per channel, and a video of one episode frame by frame."""
    from esper.envs.minatar_breakout import CELL_PIXELS, CHANNEL_COLORS
    from esper.envs.video import record_video

    env = MinAtarBreakout(2, seed=3)
    obs = env.reset(seed=3).view(2, *OBS_SHAPE)
    frame = env.render(1)
    assert frame.dtype == np.uint8 and frame.shape == (10 * CELL_PIXELS, 10 * CELL_PIXELS, 3)
    cells = frame[::CELL_PIXELS, ::CELL_PIXELS]  # one pixel per board cell
    paddle, ball, _, brick = obs[1].numpy() > 0
    assert (cells[brick & ~ball] == CHANNEL_COLORS[3]).all()
    assert (cells[paddle] == CHANNEL_COLORS[0]).all()
    assert (cells[~obs[1].numpy().any(0)] == 0).all()  # empty cells are black

    pytest.importorskip("imageio_ffmpeg")
    import imageio.v2 as imageio

    def stay(obs, starts, mask):  # mask: None, breakout allows every action
        return torch.zeros(obs.shape[0], dtype=torch.int64)

    path = tmp_path / "breakout.mp4"
    frames = record_video("minatar-breakout", stay, path, seed=0)
    played = MinAtarBreakout(1, seed=0)
    played.reset(seed=0)
    length = 1
    while not bool(played.step(torch.zeros(1, dtype=torch.int64))[2][0]):
        length += 1
    assert frames == length  # one frame per step of the episode
    assert imageio.get_reader(path).get_data(0).shape == frame.shape
