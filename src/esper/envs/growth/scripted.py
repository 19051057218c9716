"""Scripted growth policies: baselines a learned policy must beat.

Each is a callable ``(obs [n, obs_dim], action_mask [n, A]) -> actions [n]``
with ``reset(done)`` to forget the copies whose episode ended; all of them act
from the observation and the mask alone, as the learned policy does, and only
ever pick an allowed action.

- ``never``: WAIT always; the bare host.
- ``all-at-start``: germinate the largest blueprint that fits in every free
  slot from the first epoch, advance every seed at the first chance, fossilize
  every holding seed.
- ``plateau``: germinate (the largest blueprint that fits) when validation loss
  has not improved for ``patience`` epochs, advance a seed after
  ``isolation`` epochs in isolation, fossilize a holding seed whose
  contribution is positive and prune one whose contribution is not.
- ``random``: uniform over the allowed actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from esper.envs.growth.actions import ADVANCE, FOSSILIZE, GERMINATE, PRUNE, action_table
from esper.envs.growth.lifecycle import HOLDING, TRAINING
from esper.envs.growth.observation import Fields


class Scripted:
    """Shared parts: the action table and observation fields of one env's settings."""

    def __init__(self, env: Any) -> None:
        self.settings = env.settings
        self.table = action_table(env.settings, env.device)
        self.fields = Fields(env.settings)
        self.device = env.device

    def reset(self, done: torch.Tensor) -> None:
        """Forget what was kept about the copies whose episode ended (nothing here)."""

    def first_allowed(self, mask: torch.Tensor, wanted: torch.Tensor) -> torch.Tensor:
        """``[n]``: the first action both wanted (``[n, A]`` or ``[A]``) and allowed, else -1."""
        ok = mask & wanted
        first = ok.to(torch.int64).argmax(1)
        return torch.where(ok.any(1), first, -1)

    def largest_germination(self, mask: torch.Tensor) -> torch.Tensor:
        """The allowed germination of the most parameters (first slot on ties), else -1."""
        params = torch.tensor(
            [bp.params(self.settings.stream) for bp in self.settings.chosen], device=self.device
        ).float()
        is_germ = self.table.kind == GERMINATE
        worth = torch.where(is_germ, params[self.table.blueprint] * 8 - self.table.slot, -1.0)
        worth = torch.where(mask & is_germ, worth, -1.0)
        best = worth.argmax(1)
        return torch.where(worth.max(1).values > 0, best, -1)


def _either(*choices: torch.Tensor) -> torch.Tensor:
    """The first choice that is not -1, in order; WAIT (0) when none."""
    out = torch.zeros_like(choices[0])
    for choice in reversed(choices):
        out = torch.where(choice >= 0, choice, out)
    return out


class Never(Scripted):
    def __call__(self, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return torch.zeros(obs.shape[0], dtype=torch.int64, device=obs.device)


class AllAtStart(Scripted):
    def __call__(self, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        assert mask is not None
        kind = self.table.kind
        return _either(
            self.largest_germination(mask),
            self.first_allowed(mask, kind == ADVANCE),
            self.first_allowed(mask, kind == FOSSILIZE),
        )


class Plateau(Scripted):
    """Germinates on a plateau of validation loss; keeps seeds that help."""

    patience = 2  # epochs without a new best validation loss
    isolation = 2  # epochs a seed trains in isolation before it blends
    tolerance = 0.01  # an improvement smaller than this (of loss / log classes) is none

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        n = env.num_envs
        self.best = torch.full((n,), float("inf"), device=env.device)
        self.stale = torch.zeros(n, device=env.device)

    def reset(self, done: torch.Tensor) -> None:
        self.best.masked_fill_(done, float("inf"))
        self.stale.masked_fill_(done, 0)

    def __call__(self, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        assert mask is not None
        loss = obs[:, self.fields.val_loss]
        improved = loss < self.best - self.tolerance
        self.stale.copy_(torch.where(improved, 0.0, self.stale + 1))
        self.best.copy_(torch.minimum(self.best, loss))
        n, k = obs.shape[0], self.settings.slots
        slots = [self.fields.slot(obs, i) for i in range(k)]
        stage = torch.stack([slot["stage"] for slot in slots], 1)
        age = torch.stack([slot["age"] for slot in slots], 1)
        contribution = torch.stack([slot["contribution"] for slot in slots], 1)
        per_slot = self.table.slot.unsqueeze(0).expand(n, -1)
        kind = self.table.kind.unsqueeze(0)

        def on(slots_wanted: torch.Tensor) -> torch.Tensor:  # [n, K] -> [n, A]
            return slots_wanted.gather(1, per_slot)

        ready = (stage == TRAINING) & (age >= self.isolation)
        holding = stage == HOLDING
        germinate = torch.where(self.stale >= self.patience, self.largest_germination(mask), -1)
        return _either(
            self.first_allowed(mask, (kind == PRUNE) & on(holding & (contribution <= 0))),
            self.first_allowed(mask, (kind == FOSSILIZE) & on(holding & (contribution > 0))),
            self.first_allowed(mask, (kind == ADVANCE) & on(ready)),
            germinate,
        )


class Uniform(Scripted):
    def __init__(self, env: Any) -> None:
        super().__init__(env)
        self.generator = torch.Generator(device=env.device)
        self.generator.manual_seed(int(torch.randint(0, 2**31 - 1, (), generator=env.generator)))

    def __call__(self, obs: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        assert mask is not None
        return torch.multinomial(mask.float(), 1, generator=self.generator).squeeze(1)


SCRIPTED: dict[str, Callable[[Any], Scripted]] = {
    "never": Never,
    "all-at-start": AllAtStart,
    "plateau": Plateau,
    "random": Uniform,
}
