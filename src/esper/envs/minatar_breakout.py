"""MinAtar's Breakout as a batched tensor environment (``minatar-breakout``).

The rules are those of the ``minatar`` package's ``breakout`` game (Young &
Tian, 2019), ported to whole-batch tensor ops: a 10x10 board, three rows of
bricks (rows 1-3), a paddle on the bottom row and a ball that moves one cell
along a diagonal each step. A wall reflects the ball; a brick pays +1, vanishes
and reflects the ball (unless the previous step struck one too: then the ball
passes into the cell, as in MinAtar); the paddle returns it (straight back
when it sat above the paddle, reversed in both directions when it lands on
it from the side); the episode terminates when the ball reaches the bottom row
anywhere else. When the ball reaches the bottom row with every brick gone,
the three rows come back. The ball starts on row 3 at the left wall heading
down-right or at the right wall heading down-left, drawn from this env's
generator.

Actions are MinAtar's minimal action set for Breakout, in its order:
``0`` no-op, ``1`` left, ``2`` right (MinAtar's full-set indices 0, 1, 3).
Sticky actions, as MinAtar's ``Environment`` wrapper does them: with
probability ``sticky_action_prob`` (0.1, MinAtar's default) a step repeats the
action the previous step took instead of the one given; the previous action
carries over an episode's end, as the wrapper's does. MinAtar has no
difficulty ramping in Breakout and no time limit; episodes here are truncated
at ``MAX_EPISODE_STEPS``.

Observation: MinAtar's image with channels first, ``[C, H, W] = [4, 10, 10]``
(channels paddle, ball, trail, brick, MinAtar's order), 0.0/1.0 float32,
flattened to ``obs_dim = 400`` because the batched contract is a flat
``[num_envs, obs_dim]`` observation; ``MinAtarBreakout.obs_shape`` gives the
shape to unflatten it with (``obs.view(-1, *obs_shape)``), and the spec
declares it, so ``encoder = "cnn"`` reads the image unflattened (the shipped
config does; ``encoder = "mlp"`` reads the flat vector). MinAtar's own
``state()`` is ``[H, W, C]``: ``obs_chw = theirs.transpose(2, 0, 1)``.

``state`` packs the fields of MinAtar's ``breakout.Env`` (see ``STATE_FIELDS``):
``ball_x, ball_y, ball_dir, pos`` (the paddle), ``brick_map`` rows 1-3 (30
cells, row-major; its other rows are always empty), ``strike, last_x, last_y,
terminal``, then the sticky-action wrapper's ``last_action`` (a minimal-set
index) and ``sticky_draw``, the uniform draw that decides whether the next
step repeats ``last_action``. Every value is a small integer (or the draw, in
[0, 1)), exact in the state's float dtype.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from esper.envs.base import BatchedEnv, EnvSpec, StepResult, Transition
from esper.envs.spaces import DiscreteSpace

SIZE = 10  # the board is SIZE x SIZE cells
CHANNELS = ("paddle", "ball", "trail", "brick")  # MinAtar's channel order
OBS_SHAPE = (len(CHANNELS), SIZE, SIZE)
PLANE = SIZE * SIZE  # cells of one channel in the flat observation
BRICK_ROWS = (1, 4)  # bricks live in rows [1, 4): MinAtar's brick_map[1:4, :]
N_BRICK_ROWS = BRICK_ROWS[1] - BRICK_ROWS[0]
START_Y = 3
START_PADDLE = 4
MAX_EPISODE_STEPS = 10_000  # MinAtar sets no limit; long enough for a good player
# Videos: paddle, ball, trail, brick (CHANNELS' order) on black, 16 pixels a cell.
CHANNEL_COLORS = ((230, 230, 230), (230, 80, 60), (120, 60, 50), (70, 140, 230))
CELL_PIXELS = 16
MINIMAL_ACTIONS = (0, 1, 3)  # MinAtar's indices (of n, l, u, r, d, f) for no-op, left, right

STATE_FIELDS = (
    "ball_x", "ball_y", "ball_dir", "pos",
    *(f"brick_{row}_{col}" for row in range(*BRICK_ROWS) for col in range(SIZE)),
    "strike", "last_x", "last_y", "terminal", "last_action", "sticky_draw",
)  # fmt: skip
BALL_X, BALL_Y, BALL_DIR, PADDLE = 0, 1, 2, 3
BRICKS = slice(4, 4 + N_BRICK_ROWS * SIZE)
STRIKE, LAST_X, LAST_Y, TERMINAL, LAST_ACTION, STICKY_DRAW = range(BRICKS.stop, BRICKS.stop + 6)

# The brick channel's rows 1-3 in the flat observation: the brick part of the state.
BRICK_CELLS = slice(3 * PLANE + BRICK_ROWS[0] * SIZE, 3 * PLANE + BRICK_ROWS[1] * SIZE)

# Ball directions as MinAtar numbers them: 0 up-left, 1 up-right, 2 down-right, 3 down-left.
STEP_X = (-1, 1, 1, -1)
STEP_Y = (-1, -1, 1, 1)
FLIP_X = (1, 0, 3, 2)  # off a side wall
FLIP_Y = (3, 2, 1, 0)  # off the ceiling, a brick, or the paddle from above
FLIP_BOTH = (2, 3, 0, 1)  # off the paddle's side: straight back the way it came
MOVE = (0, -1, 1)  # paddle moves of the minimal actions


class MinAtarBreakout(BatchedEnv):
    spec = EnvSpec(
        "minatar-breakout", "", max_episode_steps=MAX_EPISODE_STEPS,
        obs_dim=len(CHANNELS) * SIZE * SIZE, state_dim=len(STATE_FIELDS),
        action_space=DiscreteSpace(len(MINIMAL_ACTIONS)), obs_shape=OBS_SHAPE,
    )  # fmt: skip
    obs_shape: ClassVar[tuple[int, int, int]] = OBS_SHAPE  # [C, H, W] of the flat obs

    def __init__(
        self,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        sticky_action_prob: float = 0.1,
    ) -> None:
        if not 0.0 <= sticky_action_prob <= 1.0:
            raise ValueError(f"sticky_action_prob must be in [0, 1] (got {sticky_action_prob})")
        super().__init__(num_envs, device, seed, dtype)
        self.sticky_action_prob = sticky_action_prob

        def table(values: tuple[int, ...]) -> torch.Tensor:
            return torch.tensor(values, dtype=torch.int64, device=self.device)

        self._step_x, self._step_y = table(STEP_X), table(STEP_Y)
        self._flip_x, self._flip_y, self._flip_both = table(FLIP_X), table(FLIP_Y), table(FLIP_BOTH)
        self._move = table(MOVE)
        self._cells = torch.arange(N_BRICK_ROWS * SIZE, device=self.device)  # brick cells
        start = torch.zeros(self.spec.state_dim, dtype=dtype, device=self.device)
        start[BALL_Y] = start[LAST_Y] = START_Y
        start[PADDLE] = START_PADDLE
        start[BRICKS] = 1
        self._start = start  # every field of a fresh state but the ball's side and the draw
        # Where the paddle, ball and trail channels begin in the flat [C*H*W] observation.
        self._planes = table((PLANE * 0, PLANE * 1, PLANE * 2))

    # --- the game ------------------------------------------------------------
    def initial_state(self, n: int) -> torch.Tensor:
        """MinAtar's reset: the ball on row 3 at the left wall heading down-right,
        or at the right wall heading down-left, with even odds."""
        right = torch.randint(0, 2, (n,), generator=self.generator, device=self.device)
        draw = torch.rand(n, generator=self.generator, device=self.device, dtype=self.dtype)
        state = self._start.expand(n, -1).clone()
        right = right.to(self.dtype)
        state[:, BALL_X] = state[:, LAST_X] = right * (SIZE - 1)
        state[:, BALL_DIR] = right + 2
        state[:, STICKY_DRAW] = draw
        return state

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        """One step of MinAtar's ``breakout.Env.act`` for every copy, with
        ``actions`` already the ones taken (sticky actions are ``step``'s)."""
        fields = state.to(torch.int64)
        x, y, direction = fields[:, BALL_X], fields[:, BALL_Y], fields[:, BALL_DIR]
        bricks = fields[:, BRICKS].view(-1, N_BRICK_ROWS, SIZE)
        strike = fields[:, STRIKE] != 0
        paddle = (fields[:, PADDLE] + self._move[actions.long()]).clamp(0, SIZE - 1)

        new_x = x + self._step_x[direction]
        new_y = y + self._step_y[direction]
        side = (new_x < 0) | (new_x > SIZE - 1)
        new_x = new_x.clamp(0, SIZE - 1)
        direction = torch.where(side, self._flip_x[direction], direction)
        ceiling = new_y < 0
        new_y = new_y.clamp_min(0)

        # The brick in the cell the ball enters (MinAtar tests it unless the ball hit the ceiling).
        row = new_y - BRICK_ROWS[0]
        in_rows = (row >= 0) & (row < N_BRICK_ROWS)
        cell = row.clamp(0, N_BRICK_ROWS - 1) * SIZE + new_x
        brick = bricks.flatten(1).gather(1, cell.unsqueeze(1)).squeeze(1) != 0
        at_brick = in_rows & ~ceiling & brick
        breaks = at_brick & ~strike  # a brick struck the step before lets the ball in
        hit = (self._cells == cell.unsqueeze(1)) & breaks.unsqueeze(1)
        bricks = bricks.masked_fill(hit.view_as(bricks), 0)

        bottom = new_y == SIZE - 1
        cleared = bottom & (bricks.flatten(1).sum(1) == 0)
        bricks = bricks.masked_fill(cleared.view(-1, 1, 1), 1)
        above = bottom & (x == paddle)  # the ball was over the paddle: straight back up
        beside = bottom & ~above & (new_x == paddle)  # lands on it from the side: reversed
        terminated = bottom & ~above & ~beside

        bounce_y = ceiling | breaks | above
        direction = torch.where(bounce_y, self._flip_y[direction], direction)
        direction = torch.where(beside, self._flip_both[direction], direction)
        new_y = torch.where(breaks | above | beside, y, new_y)

        columns = torch.stack((new_x, new_y, direction, paddle), dim=1)
        tail = torch.stack((at_brick.long(), x, y, terminated.long()), dim=1)
        game = torch.cat((columns, bricks.flatten(1), tail), dim=1).to(state.dtype)
        # The sticky-action wrapper's fields are step's to change.
        next_state = torch.cat((game, state[:, LAST_ACTION:]), dim=1)
        return next_state, breaks.to(torch.float32), terminated

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        """``[n, 4 * 10 * 10]``: MinAtar's image, channels first, flattened."""
        fields = state.to(torch.int64)
        cells = torch.stack(
            (
                (SIZE - 1) * SIZE + fields[:, PADDLE],
                fields[:, BALL_Y] * SIZE + fields[:, BALL_X],
                fields[:, LAST_Y] * SIZE + fields[:, LAST_X],
            ),
            dim=1,
        )
        obs = torch.zeros(
            state.shape[0], self.spec.obs_dim, device=state.device, dtype=torch.float32
        )
        obs.scatter_(1, cells + self._planes, 1.0)
        obs[:, BRICK_CELLS] = state[:, BRICKS].to(torch.float32)
        return obs

    def render(self, index: int = 0) -> np.ndarray:
        """Copy ``index``'s board as MinAtar draws it, one colour per channel
        (the later channel on top), each cell ``CELL_PIXELS`` square."""
        board_planes = self.observe(self.state[index : index + 1]).view(OBS_SHAPE)
        planes = board_planes.cpu().numpy()  # host-sync: a video frame, between batches
        board = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        for plane, color in zip(planes, CHANNEL_COLORS, strict=True):
            board[plane > 0] = color
        return board.repeat(CELL_PIXELS, axis=0).repeat(CELL_PIXELS, axis=1)

    # --- sticky actions (MinAtar's Environment wrapper) -------------------------
    def step(self, actions: torch.Tensor, fresh: torch.Tensor | None = None) -> StepResult:
        """``BatchedEnv.step`` with MinAtar's sticky actions: a copy whose
        ``sticky_draw`` is below ``sticky_action_prob`` repeats its
        ``last_action``. Every copy's next draw comes from this step's row of
        fresh states, so the draws follow ``draw_initial_states`` exactly.

        The time limit, auto-reset and ``final_obs`` are the base's, with one
        change for speed: the observation after a reset is that of the merged
        state, not a blend of two 400-wide observations (``torch.where`` over
        ``[num_envs, 400]`` floats costs more on a CPU than the whole game).
        """
        actions = actions.to(self.device, non_blocking=True).long()
        if fresh is None:
            fresh = self.initial_state(self.num_envs)
        repeat = self.state[:, STICKY_DRAW] < self.sticky_action_prob
        taken = torch.where(repeat, self.state[:, LAST_ACTION].long(), actions)
        next_state, reward, terminated = self.dynamics(self.state.clone(), taken)
        self.elapsed_steps += 1
        truncated = self.elapsed_steps >= self.spec.max_episode_steps
        final_obs = self.observe(next_state)
        done = terminated | truncated
        # In place: the state keeps its storage, so a captured CUDA graph replays it.
        torch.where(done.unsqueeze(1), fresh, next_state, out=self.state)
        self.elapsed_steps.masked_fill_(done, 0)
        # Every copy, a reset one too: MinAtar's wrapper keeps its last action across episodes.
        self.state[:, LAST_ACTION] = taken.to(self.dtype)
        self.state[:, STICKY_DRAW] = fresh[:, STICKY_DRAW]
        obs = self.observe(self.state)
        return obs, reward, terminated, truncated, {"final_obs": final_obs}

    @property
    def takes_drawn_states(self) -> bool:
        return True  # ``step`` takes ``draw_initial_states``' rows, as the base's does
