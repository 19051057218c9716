"""MPE's ``simple_spread`` as a batched multi-agent environment (``simple-spread``).

The rules are those of ``mpe2.simple_spread_v3`` (Farama's maintained MPE) with
its defaults: ``N=3`` agents and 3 landmarks, ``local_ratio=0.5``,
``max_cycles=25``, discrete actions, full observability, no curriculum, no
early termination. Agents (radius 0.15, mass 1) and landmarks start uniform in
``[-1, 1]²``, agents at rest; landmarks never move and nothing collides with
them. One step, for every copy at once:

- action ``a`` of each agent (``0`` no-op, ``1`` -x, ``2`` +x, ``3`` -y,
  ``4`` +y) is a force of 5 (the sensitivity) along that axis;
- every pair of agents pushes apart with ``100 · k · softplus(-(d - 0.3)/k) ·
  Δp/d``, ``k = 0.001`` (the soft contact of MPE's ``World``);
- then, as mpe2 integrates: ``p += v·dt``, *then* ``v = 0.75·v + F·dt``
  (``dt = 0.1``), i.e. the position moves with the velocity the step began
  with (classic MPE and MAPPO's copy update ``v`` first; see
  docs/simple-spread.md);
- agent ``i``'s reward is ``(1 - local_ratio)·G + local_ratio·L_i``: ``G =
  -Σ_landmarks min_agents distance`` is shared, ``L_i = -(number of other
  agents closer than 0.3 to i)`` is its own collision penalty.

Observation of agent ``i`` (18 floats): its velocity, its position, each
landmark's position relative to it, each other agent's position relative to it
(in agent order, itself skipped), then the other agents' communication, which
is always zero here (the agents are silent), as mpe2 and classic MPE both send.

``state`` is ``[agent positions (N×2), agent velocities (N×2), landmark
positions (N×2)]``, row-major per entity.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from esper.envs.base import BatchedEnv, EnvSpec, Transition
from esper.envs.spaces import DiscreteSpace

N_AGENTS = 3
N_LANDMARKS = 3
DIM = 2  # positions live in the plane
COMM_DIM = 2  # mpe2's world.dim_c: silent agents still send 2 zeros
AGENT_SIZE = 0.15
LANDMARK_SIZE = 0.05  # MPE's Entity default; only drawn
DT = 0.1
DAMPING = 0.25
MASS = 1.0
SENSITIVITY = 5.0  # action force scale (MPE's _set_action)
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
LOCAL_RATIO = 0.5  # mpe2's default weight of each agent's own collision penalty
MAX_CYCLES = 25
N_ACTIONS = 2 * DIM + 1
# Unit force per action: no-op, -x, +x, -y, +y (mpe2's discrete mapping).
ACTION_FORCES = ((0.0, 0.0), (-1.0, 0.0), (1.0, 0.0), (0.0, -1.0), (0.0, 1.0))

POS = slice(0, N_AGENTS * DIM)
VEL = slice(POS.stop, POS.stop + N_AGENTS * DIM)
LANDMARKS = slice(VEL.stop, VEL.stop + N_LANDMARKS * DIM)
STATE_DIM = LANDMARKS.stop
OBS_DIM = 2 * DIM + N_LANDMARKS * DIM + (N_AGENTS - 1) * (DIM + COMM_DIM)

# Videos: MPE's colours (agents blue, landmarks grey), colliding agents red.
AGENT_COLOR = (89, 89, 217)
COLLIDING_COLOR = (220, 50, 50)
LANDMARK_COLOR = (64, 64, 64)
VIEW = 1.2  # the picture shows [-VIEW, VIEW] vertically (wider when agents wander)


def others(n_agents: int) -> torch.Tensor:
    """``[n_agents, n_agents - 1]``: for each agent, the other agents in order."""
    index = torch.arange(n_agents)
    return torch.stack([index[index != i] for i in range(n_agents)])


class SimpleSpread(BatchedEnv):
    spec = EnvSpec(
        "simple-spread", "", max_episode_steps=MAX_CYCLES, obs_dim=OBS_DIM,
        state_dim=STATE_DIM, action_space=DiscreteSpace(N_ACTIONS), n_agents=N_AGENTS,
    )  # fmt: skip
    render_fps: ClassVar[int] = 10  # mpe2's; one step is dt = 0.1 s
    pettingzoo_twin: ClassVar[str] = "mpe2.simple_spread_v3"

    def __init__(
        self,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        local_ratio: float = LOCAL_RATIO,
    ) -> None:
        """``local_ratio`` weighs each agent's own collision penalty against the
        shared landmark reward, as mpe2's argument of that name does."""
        if not 0.0 <= local_ratio <= 1.0:
            raise ValueError(f"local_ratio must be in [0, 1] (got {local_ratio})")
        super().__init__(num_envs, device, seed, dtype)
        self.local_ratio = local_ratio
        self._forces = SENSITIVITY * torch.tensor(ACTION_FORCES, dtype=dtype, device=self.device)
        self._others = others(N_AGENTS).to(self.device)
        self._pairs = ~torch.eye(N_AGENTS, dtype=torch.bool, device=self.device)

    def initial_state(self, n: int) -> torch.Tensor:
        """mpe2's ``reset_world``: agents then landmarks uniform in [-1, 1]², at rest."""
        agents = self.uniform(n, N_AGENTS * DIM, -1.0, 1.0)
        landmarks = self.uniform(n, N_LANDMARKS * DIM, -1.0, 1.0)
        return torch.cat((agents, torch.zeros_like(agents), landmarks), dim=1)

    @staticmethod
    def unpack(state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Agent positions and velocities ``[n, N_AGENTS, 2]``; landmarks ``[n, N_LANDMARKS, 2]``.
        Views of ``state``."""
        n = state.shape[0]
        return (
            state[:, POS].view(n, N_AGENTS, DIM),
            state[:, VEL].view(n, N_AGENTS, DIM),
            state[:, LANDMARKS].view(n, N_LANDMARKS, DIM),
        )

    def contact_forces(self, pos: torch.Tensor) -> torch.Tensor:
        """``[n, N_AGENTS, 2]``: the soft contact force every other agent puts on each."""
        delta = pos.unsqueeze(2) - pos.unsqueeze(1)  # [n, i, j, 2]: p_i - p_j
        dist = delta.square().sum(-1).sqrt()
        # Where dist is 0 (the diagonal i == j, or two agents exactly together,
        # where mpe2 divides by zero) delta is 0 too: the floor keeps NaN out.
        safe = dist.clamp_min(1e-12)
        overlap = -(safe - 2 * AGENT_SIZE) / CONTACT_MARGIN
        penetration = torch.logaddexp(torch.zeros_like(overlap), overlap) * CONTACT_MARGIN
        push = (CONTACT_FORCE * penetration / safe) * self._pairs
        return (delta * push.unsqueeze(-1)).sum(2)

    def collisions(self, pos: torch.Tensor) -> torch.Tensor:
        """``[n, N_AGENTS]``: how many other agents overlap each (distance < 0.3)."""
        dist = (pos.unsqueeze(2) - pos.unsqueeze(1)).square().sum(-1).sqrt()
        return ((dist < 2 * AGENT_SIZE) & self._pairs).sum(-1)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        pos, vel, landmarks = self.unpack(state)
        force = self._forces[actions.long()] + self.contact_forces(pos)
        next_pos = pos + vel * DT
        next_vel = vel * (1 - DAMPING) + (force / MASS) * DT
        n = state.shape[0]
        next_state = torch.cat(
            (next_pos.reshape(n, -1), next_vel.reshape(n, -1), state[:, LANDMARKS]), 1
        )
        to_landmarks = (next_pos.unsqueeze(1) - landmarks.unsqueeze(2)).square().sum(-1).sqrt()
        shared = -to_landmarks.amin(dim=2).sum(1, keepdim=True)  # [n, 1]
        own = -self.collisions(next_pos).to(state.dtype)  # [n, N_AGENTS]
        reward = shared * (1 - self.local_ratio) + own * self.local_ratio
        return next_state, reward, torch.zeros(n, dtype=torch.bool, device=state.device)

    def observe(self, state: torch.Tensor) -> torch.Tensor:
        pos, vel, landmarks = self.unpack(state)
        n = state.shape[0]
        to_landmarks = landmarks.unsqueeze(1) - pos.unsqueeze(2)  # [n, agent, landmark, 2]
        to_others = pos[:, self._others] - pos.unsqueeze(2)  # [n, agent, other, 2]
        comm = torch.zeros(
            n, N_AGENTS, (N_AGENTS - 1) * COMM_DIM, dtype=state.dtype, device=state.device
        )
        parts = (vel, pos, to_landmarks.flatten(2), to_others.flatten(2), comm)
        return torch.cat(parts, dim=2).to(torch.float32)

    def render(self, index: int = 0) -> np.ndarray:
        """Landmarks (small, grey) and agents (blue; red while overlapping another)
        of copy ``index``, the view widening to keep every agent in the picture."""
        from esper.envs.render import HEIGHT, WIDTH, Canvas

        pos, _, landmarks = self.unpack(self.state[index : index + 1])
        colliding = self.collisions(pos)[0].cpu().numpy() > 0  # host-sync: a video frame
        pos = pos[0].double().cpu().numpy()  # host-sync: a video frame
        landmarks = landmarks[0].double().cpu().numpy()  # host-sync: a video frame
        view = max(VIEW, float(np.abs(pos).max()) + AGENT_SIZE)  # host-sync: numpy
        scale = (HEIGHT / 2) / view  # pixels per unit; y grows downwards on screen

        def pixels(p: np.ndarray) -> tuple[float, float]:
            return WIDTH / 2 + p[0] * scale, HEIGHT / 2 - p[1] * scale

        canvas = Canvas()
        for i, p in enumerate(pos):
            color = COLLIDING_COLOR if colliding[i] else AGENT_COLOR
            canvas.disc(*pixels(p), AGENT_SIZE * scale, color)
        for p in landmarks:
            canvas.disc(*pixels(p), max(LANDMARK_SIZE * scale, 2.0), LANDMARK_COLOR)
        return canvas.image
