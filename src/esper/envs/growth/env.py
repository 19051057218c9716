"""``grow-mlp``: every environment is a host network in training, and the policy grows it.

One step is one host epoch for every copy at once: the action moves a seed
through its lifecycle (``lifecycle.py``, ``actions.py``), then every host
takes ``steps_per_epoch`` Adam steps on its episode's training set
(``hosts.py``), then one validation pass per counterfactual, then the
observation, reward and the mask of legal next moves (``observation.py``).
An episode is ``max_epochs`` epochs; every copy then starts a fresh problem
and a fresh bare host (``problem.py``).

Random draws: a fresh episode's whole draw is one row of
``draw_initial_states`` (made before the rollout's loop, as the base class
does), so the step itself draws nothing and compiles as one graph. One row
per copy per episode that can end within the batch, not one per step: the
step picks, for each copy, the row of the episodes it has started since the
draw (``_spare``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from esper.envs.base import BatchedEnv, EnvSpec, StepResult, TaskStatistic, Transition
from esper.envs.growth import hosts, lifecycle, picture, statistics
from esper.envs.growth.actions import (
    ADVANCE,
    FOSSILIZE,
    GERMINATE,
    PRUNE,
    WAIT,
    action_count,
    action_table,
    legal_actions,
)
from esper.envs.growth.lifecycle import BLENDING, EMBARGOED, TRAINING
from esper.envs.growth.observation import (
    HISTORY,
    REWARD_MODE,
    learning_row,
    observe,
    params_used,
    score,
)
from esper.envs.growth.problem import draw_episodes, episode_layout
from esper.envs.growth.scripted import SCRIPTED
from esper.envs.growth.settings import GrowthSettings, settings_from
from esper.envs.growth.spec import DEFAULT_SETTINGS, chosen_settings, growth_spec
from esper.envs.growth.statistics import EPISODE_STATISTICS, STATISTICS


class GrowMLP(BatchedEnv):
    """``num_envs`` hosts growing at once; ``settings`` chooses the problem and slots."""

    spec: ClassVar[EnvSpec] = growth_spec(DEFAULT_SETTINGS)
    default_config: ClassVar[dict[str, Any]] = {}  # configs/grow-mlp.toml holds them
    scripted: ClassVar[dict[str, Any]] = SCRIPTED
    statistics: ClassVar[tuple[TaskStatistic, ...]] = STATISTICS
    episode_statistics: ClassVar[tuple[TaskStatistic, ...]] = EPISODE_STATISTICS

    def __init__(
        self,
        num_envs: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        settings: GrowthSettings | None = None,
        options: dict[str, Any] | None = None,
    ) -> None:
        s = self.settings = chosen_settings(settings, options)
        if s != DEFAULT_SETTINGS:
            self.spec = growth_spec(s, type(self).spec.name)  # type: ignore[misc]
        super().__init__(num_envs, device, seed, torch.float32)
        n, dev, k = num_envs, self.device, s.slots
        self.episode = episode_layout(s)
        self.table = action_table(s, dev)
        bp = s.chosen
        self.blueprint_params = torch.tensor([b.params(s.stream) for b in bp], device=dev).float()
        widths = torch.tensor([b.width for b in bp], device=dev)
        self.blueprint_units = (torch.arange(s.max_width, device=dev) < widths[:, None]).float()
        self.blueprint_linear = torch.tensor([b.linear for b in bp], device=dev).float()

        def zeros(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.zeros(*shape, device=dev, dtype=dtype)

        width = hosts.host_layout(s).width
        self.weights, self.moments = zeros(n, width), zeros(2, n, width)
        self.steps = zeros(n, 1 + k)  # Adam steps of the host and of each slot's seed
        self.seed_fresh = zeros(n, k, hosts.seed_layout(s).width)  # a germination's weights
        self.train_x, self.val_x = zeros(n, s.train_size, s.in_dim), zeros(n, s.val_size, s.in_dim)
        self.train_y = zeros(n, s.train_size, dtype=torch.int64)
        self.val_y = zeros(n, s.val_size, dtype=torch.int64)
        self.stage = zeros(n, k, dtype=torch.int64)
        self.blueprint = zeros(n, k, dtype=torch.int64)
        self.alpha, self.age, self.embargo = zeros(n, k), zeros(n, k), zeros(n, k)
        self.contribution = zeros(n, k)
        self.history = zeros(n, HISTORY, 4)
        self.score = zeros(n)
        self.params = zeros(n)
        self.spare = zeros(n, dtype=torch.int64)  # episodes started since the last draw
        self.action_mask = torch.ones(n, action_count(s), dtype=torch.bool, device=dev)
        self.totals = zeros(len(statistics.TOTALS))
        # The epoch every copy is at (they move in lockstep), known on the host; None
        # once a step was handed rows (the rollout's), which keeps no such count.
        self._epoch: int | None = 0

    # --- BatchedEnv's pieces (the step below uses its own) -----------------------
    def initial_state(self, n: int) -> torch.Tensor:
        return draw_episodes(n, self.generator, self.settings, self.device)

    def dynamics(self, state: torch.Tensor, actions: torch.Tensor) -> Transition:
        raise NotImplementedError("grow-mlp steps its hosts in step(), not as a state map")

    @property
    def takes_drawn_states(self) -> bool:
        return True

    def draw_initial_states(self, steps: int) -> torch.Tensor:
        """``[steps, E, n, D]``: ``E`` fresh episodes per copy, the most that can
        start within ``steps`` steps, the same rows handed to every step (a view,
        no copy); each copy takes the next unused one when its episode ends."""
        count = math.ceil(steps / self.settings.max_epochs)
        rows = torch.stack([self.initial_state(self.num_envs) for _ in range(count)])
        self.spare.zero_()
        return rows.unsqueeze(0).expand(steps, *rows.shape)

    # --- the contract ----------------------------------------------------------------
    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:
            self.generator.manual_seed(seed)
        everyone = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
        self._start(everyone, self.initial_state(self.num_envs))
        self._epoch = 0
        return self._observe()

    def step(self, actions: torch.Tensor, fresh: torch.Tensor | None = None) -> StepResult:
        """One host epoch for every copy (module docstring). ``fresh`` is a row of
        ``draw_initial_states``; without one the step draws its own (eagerly)."""
        if fresh is None:
            fresh = self._eager_rows()
        else:  # rows handed in (the rollout, perhaps compiled): the host clock is not kept
            self._epoch = None
        actions = actions.to(self.device, non_blocking=True).long().view(self.num_envs)
        self._act(actions)
        s = self.settings
        lifecycle.tick(self.stage, self.alpha, self.age, self.embargo, s.blend_epochs)
        train_loss, train_accuracy = self._train()
        val_loss, val_accuracy = self._validate()
        self.params.copy_(params_used(self.stage, self.blueprint, self.blueprint_params, s))
        new_score = score(val_accuracy, self.params, s)
        reward = new_score - self.score
        self.score.copy_(new_score)
        row = learning_row(train_loss, train_accuracy, val_loss, val_accuracy, s)
        self.history.copy_(torch.cat((row.unsqueeze(1), self.history[:, :-1]), dim=1))
        self.elapsed_steps += 1
        # The host's training is over: a true end (no value to bootstrap), not a time limit.
        terminated = self.elapsed_steps >= s.max_epochs
        truncated = torch.zeros_like(terminated)
        self._update_mask()
        final_obs = self._observe()
        self._count(terminated, val_accuracy)
        self._start(terminated, self._spare(fresh))
        if self._epoch is not None:  # the host-side twin of elapsed_steps
            self._epoch = (self._epoch + 1) % s.max_epochs
        return (
            self._observe(),
            reward,
            terminated,
            truncated,
            {
                "final_obs": final_obs,
                "action_mask": self.action_mask.clone(),
            },
        )

    def _eager_rows(self) -> torch.Tensor:
        """Fresh episodes for a step called without rows: drawn only when the
        episodes end at this step. Every copy starts and ends its episodes
        together (all reset at once, fixed length), so the host knows when
        without reading the device; other steps get zeros, which no copy reads.
        Without that count (after a rollout's steps) it draws at every step."""
        if self._epoch is None or self._epoch == self.settings.max_epochs - 1:
            return self.initial_state(self.num_envs).unsqueeze(0)
        return torch.zeros(1, self.num_envs, self.episode.width, device=self.device)

    # --- the step's parts --------------------------------------------------------------
    def _act(self, actions: torch.Tensor) -> None:
        """The chosen lifecycle moves, in place; an illegal one is a WAIT."""
        legal = self.action_mask.gather(1, actions.unsqueeze(1)).squeeze(1)
        kind = torch.where(legal, self.table.kind[actions], WAIT)
        on = F.one_hot(self.table.slot[actions], self.settings.slots).bool()
        germinate, prune = on & (kind == GERMINATE)[:, None], on & (kind == PRUNE)[:, None]
        advance, fossilize = on & (kind == ADVANCE)[:, None], on & (kind == FOSSILIZE)[:, None]
        stage = self.stage
        stage.masked_fill_(germinate, TRAINING).masked_fill_(advance, BLENDING)
        stage.masked_fill_(fossilize, lifecycle.FOSSILIZED).masked_fill_(prune, EMBARGOED)
        self.blueprint.copy_(
            torch.where(germinate, self.table.blueprint[actions][:, None], self.blueprint)
        )
        self.alpha.masked_fill_(germinate | prune, 0.0)
        self.age.masked_fill_(germinate, 0.0)
        self.embargo.masked_fill_(prune, float(self.settings.embargo_epochs))
        self.contribution.masked_fill_(germinate | prune, 0.0)
        renewed = (germinate | prune).unsqueeze(2)
        fresh = torch.where(germinate.unsqueeze(2), self.seed_fresh, 0.0)
        self.steps[:, 1:].masked_fill_(germinate | prune, 0.0)
        for buffer in (self.weights, self.moments[0], self.moments[1]):
            seeds = hosts.host_layout(self.settings).view(buffer, "seeds")
            source = fresh if buffer is self.weights else torch.zeros_like(fresh)
            seeds.copy_(torch.where(renewed, source, seeds))
        events = torch.stack((germinate.sum(), fossilize.sum(), prune.sum())).to(self.totals.dtype)
        self.totals[statistics.MOVES] += events

    def _gates(self) -> hosts.SlotGates:
        alpha, learn = lifecycle.gates(self.stage, self.alpha)
        return hosts.SlotGates(
            alpha,
            learn,
            self.blueprint_units[self.blueprint],
            self.blueprint_linear[self.blueprint],
        )

    def _train(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``steps_per_epoch`` Adam steps on consecutive minibatches; mean loss, accuracy."""
        s, gates = self.settings, self._gates()
        losses, accuracies = [], []
        for i in range(s.steps_per_epoch):
            rows = slice(i * s.batch_size, (i + 1) * s.batch_size)
            grad, loss, accuracy = hosts.gradients(
                self.weights, self.train_x[:, rows], self.train_y[:, rows], gates, s
            )
            hosts.adam_step(self.weights, grad, self.moments, self.steps, s.host_lr, s)
            losses.append(loss)
            accuracies.append(accuracy)
        return torch.stack(losses).mean(0), torch.stack(accuracies).mean(0)

    def _validate(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Validation loss and accuracy, and each seed's counterfactual contribution:
        the accuracy with the seed minus without it (a seed in isolation: what
        adding it at full strength would give), all settings in one batched pass."""
        s, gates = self.settings, self._gates()
        k = s.slots
        active = self.alpha > 0
        toggled = torch.where(active, 0.0, (self.stage == TRAINING).to(self.alpha.dtype))
        eye = torch.eye(k, dtype=torch.bool, device=self.device)
        variants = torch.where(eye, toggled.unsqueeze(1), self.alpha.unsqueeze(1))  # [n, K, K]
        alphas = torch.cat((self.alpha.unsqueeze(1), variants), dim=1)  # [n, 1 + K, K]
        logits, _, _ = hosts.forward(self.weights, self.val_x, gates, alphas, s)
        loss, accuracy = hosts.loss_and_accuracy(logits, self.val_y)
        with_minus_without = accuracy[:, :1] - accuracy[:, 1:]
        self.contribution.copy_(torch.where(active, with_minus_without, -with_minus_without))
        self.contribution.masked_fill_(~(active | (self.stage == TRAINING)), 0.0)
        return loss[:, 0], accuracy[:, 0]

    def _update_mask(self) -> None:
        s = self.settings
        self.action_mask.copy_(
            legal_actions(self.stage, self.params, self.blueprint_params, s.param_budget)
        )

    def _observe(self) -> torch.Tensor:
        progress = self.elapsed_steps.to(torch.float32) / self.settings.max_epochs
        return observe(
            progress, self.history, self.params, self.stage, self.alpha, self.age,
            self.contribution, self.blueprint, self.settings,
        )  # fmt: skip

    def _spare(self, fresh: torch.Tensor) -> torch.Tensor:
        """``[n, D]``: each copy's next unused fresh episode of ``fresh [E, n, D]``."""
        index = self.spare.clamp(max=fresh.shape[0] - 1)
        picked = fresh.gather(0, index.view(1, -1, 1).expand(1, *fresh.shape[1:]))
        return picked.squeeze(0)

    def _start(self, done: torch.Tensor, episode: torch.Tensor) -> None:
        """Copies where ``done`` begin the episode ``episode [n, D]``: a bare host,
        every slot dormant, its first validation as the history. In place."""
        s, layout, n = self.settings, self.episode, self.num_envs
        self.spare.add_(done.long())

        def take(target: torch.Tensor, value: torch.Tensor) -> None:
            where = done.view(n, *([1] * (target.dim() - 1)))
            torch.where(where, value.to(target.dtype), target, out=target)

        fresh_weights = torch.zeros_like(self.weights)
        host = hosts.host_layout(s)
        host.view(fresh_weights, "w_in").copy_(layout.view(episode, "w_in"))
        host.view(fresh_weights, "w_out").copy_(layout.view(episode, "w_out"))
        take(self.weights, fresh_weights)
        for moment in self.moments:
            take(moment, torch.zeros_like(moment))
        take(self.steps, torch.zeros_like(self.steps))
        seed_fresh = torch.zeros_like(self.seed_fresh)
        hosts.seed_layout(s).view(seed_fresh, "a_w").copy_(layout.view(episode, "seed_in"))
        take(self.seed_fresh, seed_fresh)
        for name in ("train_x", "train_y", "val_x", "val_y"):
            take(getattr(self, name), layout.view(episode, name))
        for tensor in (self.stage, self.blueprint, self.alpha, self.age, self.embargo):
            take(tensor, torch.zeros_like(tensor))
        take(self.contribution, torch.zeros_like(self.contribution))
        loss, accuracy = layout.view(episode, "first_val").unbind(1)
        row = learning_row(loss, accuracy, loss, accuracy, s)
        take(self.history, row.unsqueeze(1).expand(n, HISTORY, row.shape[1]))
        bare = torch.full_like(self.params, float(s.host_params))
        take(self.params, bare)
        take(self.score, score(accuracy, bare, s))
        self.elapsed_steps.masked_fill_(done, 0)
        self._update_mask()

    # --- statistics, facts, checkpoints ----------------------------------------------------
    def _count(self, ended: torch.Tensor, val_accuracy: torch.Tensor) -> None:
        statistics.count_step(
            self.totals, self.stage, self.params, self.contribution, ended, val_accuracy,
            self.settings.param_budget,
        )  # fmt: skip

    def batch_statistics(self) -> dict[str, Any]:
        """The batch's statistics (``statistics.batch_statistics``); then the
        accumulators zeroed."""
        out = statistics.batch_statistics(self.totals)
        self.totals.zero_()
        return out

    def render(self, index: int = 0) -> np.ndarray:
        """Copy ``index``'s host (``picture.py``): progress, each slot's stage,
        alpha and blueprint, validation accuracy and parameters."""
        s = self.settings
        widths = self.blueprint_units[self.blueprint[index]].sum(1) / s.max_width
        seeded = lifecycle.live(self.stage[index]).float()
        # host-sync: one picture's numbers, once per frame (never in training)
        numbers = torch.cat(
            (
                self.elapsed_steps[index : index + 1].float() / s.max_epochs,
                self.history[index, 0, 3:4],  # the newest validation accuracy
                self.params[index : index + 1],
                self.stage[index].float(),
                self.alpha[index],
                widths * seeded,
            )
        ).tolist()
        k = s.slots
        slots = np.array(numbers[3:]).reshape(3, k)
        return picture.draw(
            numbers[0],
            slots[0].astype(np.int64),
            slots[1],
            slots[2],
            numbers[1],
            round(numbers[2]),
            s.param_budget,
        )

    @staticmethod
    def parse_options(options: dict[str, Any]) -> GrowthSettings:
        """The settings a config's ``[task_options]`` table asks for; a bad key or
        value is one ``ConfigError`` naming it."""
        return settings_from(options)

    def episode_values(self, final_obs: torch.Tensor) -> torch.Tensor:
        return statistics.episode_values(final_obs, self.settings)

    def start_facts(self) -> dict[str, Any]:
        s = self.settings
        return {
            "host_params": s.host_params,
            "param_budget": s.param_budget,
            "slot_ids": [f"slot{k}" for k in range(s.slots)],
            "reward_mode": REWARD_MODE,
        }

    def state_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name).clone() for name in _STATE} | {
            "generator": self.generator.get_state()
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        for name in _STATE:
            getattr(self, name).copy_(saved[name])
        self._epoch = int(saved["elapsed_steps"][0])  # host-sync: once, at a restore
        self.generator.set_state(saved["generator"])


_STATE = (
    "weights", "moments", "steps", "seed_fresh", "train_x", "train_y", "val_x", "val_y",
    "stage", "blueprint", "alpha", "age", "embargo", "contribution", "history", "score",
    "params", "spare", "action_mask", "elapsed_steps", "totals",
)  # fmt: skip
