"""The MLP actor-critic's two networks run as one, a speed trick beside the plain
``ActorCritic.act`` it must equal.

Per layer the plain forward is an ``addmm`` and a ``tanh`` for the actor and
again for the critic, each a dispatch. When the flat optimiser lays each
actor layer's weight beside its critic twin (``placement``), one strided view
holds both, ``[2, out, in]``, and one ``baddbmm`` computes both layers: the
hidden layers of a 64-64 policy cost 5 ops instead of 10 (the heads, 1 and 2
outputs wide, stay two ``addmm``). The update (training/fast/fused_update.py)
uses the same views for its hand-written backward.

What it covers: the default policy family, ``encoder="mlp"`` with tanh hidden
layers, no recurrent core, no critic-only inputs, a single categorical action,
no action mask, float32 observations, acting without gradients, eagerly (not
under ``torch.compile``). Everything else, and a policy whose parameters do not
lie side by side (no flat optimiser: evaluation, a loaded policy), runs the
plain path. ``PPOConfig.speedups`` off turns it off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from esper.training.fast.layers import sigmoid_form, tanh_from_sigmoid_


def fusable(policy: Any) -> bool:
    """Whether ``policy`` (an ``ActorCritic``) is of the shape the fused path covers."""
    return (
        policy.encoder == "mlp"
        and policy.core is None
        and policy.critic_dims == 0
        and policy.discrete
        and policy.nvec is None
        and policy.activation == "tanh"
        and len(policy.hidden) >= 1
    )


def _linears(net: nn.Sequential) -> list[nn.Linear]:
    return [layer for layer in net if isinstance(layer, nn.Linear)]


def placement(policy: nn.Module) -> list[int] | None:
    """The flat buffer's order of ``policy.parameters()`` that lays each hidden
    layer's actor weight, critic weight, actor bias and critic bias side by
    side (heads last); None for a policy the fused path does not cover."""
    if not fusable(policy):
        return None
    index = {id(p): i for i, p in enumerate(policy.parameters())}
    actor, critic = _linears(policy.actor), _linears(policy.critic)
    order = []
    for a, c in zip(actor[:-1], critic[:-1], strict=True):
        order += [index[id(a.weight)], index[id(c.weight)], index[id(a.bias)], index[id(c.bias)]]
    for head in (actor[-1], critic[-1]):
        order += [index[id(head.weight)], index[id(head.bias)]]
    return order if len(order) == len(index) else None


def _pair(actor: torch.Tensor, critic: torch.Tensor) -> torch.Tensor | None:
    """``actor`` and ``critic`` as one ``[2, *shape]`` view, when ``critic``
    starts where ``actor`` ends in the same storage; else None."""
    if actor.shape != critic.shape or not (actor.is_contiguous() and critic.is_contiguous()):
        return None
    if actor.untyped_storage().data_ptr() != critic.untyped_storage().data_ptr():
        return None
    if critic.storage_offset() != actor.storage_offset() + actor.numel():
        return None
    return actor.detach().as_strided((2, *actor.shape), (actor.numel(), *actor.stride()))


@dataclass(frozen=True)
class PairedLayers:
    """Views of the actor's and critic's parameters (or their gradients): each
    hidden layer's pair as one tensor, the two heads apart."""

    weights: list[torch.Tensor]  # [2, out, in] per hidden layer
    biases: list[torch.Tensor]  # [2, out]
    actor_weight: torch.Tensor  # [n_actions, hidden]
    actor_bias: torch.Tensor
    critic_weight: torch.Tensor  # [1, hidden]
    critic_bias: torch.Tensor

    @property
    def weights_t(self) -> list[torch.Tensor]:  # [2, in, out]
        return [w.transpose(1, 2) for w in self.weights]


def paired(actor: list[torch.Tensor], critic: list[torch.Tensor]) -> PairedLayers | None:
    """``PairedLayers`` of the per-layer tensors ``[w0, b0, w1, b1, ...]`` of
    each network; None unless every hidden pair lies side by side."""
    pairs = [_pair(a, c) for a, c in zip(actor[:-2], critic[:-2], strict=True)]
    if any(p is None for p in pairs):
        return None
    return PairedLayers(
        pairs[0::2], pairs[1::2], *(t.detach() for t in (*actor[-2:], *critic[-2:]))
    )


@dataclass(frozen=True)
class ForwardViews:
    """What the forward reads, made once per parameter storage: the transposed
    and broadcastable views each op takes as it is (no view op per call)."""

    params: PairedLayers
    weights_t: list[torch.Tensor]  # [2, in, out]
    biases: list[torch.Tensor]  # [2, 1, out]
    actor_weight_t: torch.Tensor
    critic_weight_t: torch.Tensor


class FusedMLP:
    """The fused forward of one ``ActorCritic``; views cached by storage."""

    def __init__(self) -> None:
        self._key: tuple[int, ...] | None = None
        self._views: ForwardViews | None = None
        # the networks' linear layers, found once: the networks themselves (held, so
        # a new network is never mistaken for a freed one) and their layers
        self._layers: tuple[nn.Sequential, nn.Sequential, list[nn.Linear]] | None = None

    def __getstate__(self) -> dict[str, Any]:  # a copy rebuilds its own views
        return {"_key": None, "_views": None, "_layers": None}

    def __deepcopy__(self, memo: dict[int, Any]) -> FusedMLP:
        return FusedMLP()

    def views(self, actor: nn.Sequential, critic: nn.Sequential) -> ForwardViews | None:
        """The forward's views of these networks' parameters; None when they do
        not lie side by side. Called every rollout step: the parameters are
        read from each layer's ``_parameters`` (``layer.weight`` goes through
        ``nn.Module.__getattr__``, 54 against 9 us for the check)."""
        if self._layers is None or self._layers[0] is not actor or self._layers[1] is not critic:
            self._layers = (actor, critic, [*_linears(actor), *_linears(critic)])
        key = tuple(
            t.data_ptr()
            for layer in self._layers[2]
            for t in (layer._parameters["weight"], layer._parameters["bias"])
        )
        if key != self._key:
            self._key, self._views = key, _forward_views(actor, critic)
        return self._views


def _forward_views(actor: nn.Sequential, critic: nn.Sequential) -> ForwardViews | None:
    def flat(net: nn.Sequential) -> list[torch.Tensor]:
        return [t for layer in _linears(net) for t in (layer.weight, layer.bias)]

    params = paired(flat(actor), flat(critic))
    if params is None or params.actor_weight.dtype != torch.float32:
        return None
    return ForwardViews(
        params,
        params.weights_t,
        [b.unsqueeze(1) for b in params.biases],
        params.actor_weight.t(),
        params.critic_weight.t(),
    )


# From this many elements per network the fused layer's tanh takes the sigmoid
# form: its 2 ops (``sigmoid_``, one ``add``) beat ``tanh_`` from ~3,000 (1 thread,
# [2, rows, 64]: 26 vs 32 us at 16 rows, 57 vs 49 at 32, 145 vs 73 at 64; the
# default rollout's 128 rows take it). Below ``SIGMOID_TANH_MIN_ELEMENTS`` the
# plain layer keeps ``tanh``: the two paths then differ at float rounding (3e-7).
FUSED_MIN_ELEMENTS = 4_096


def tanh_layer(bias: torch.Tensor, x: torch.Tensor, weight_t: torch.Tensor) -> torch.Tensor:
    """``tanh(bias + x @ weight_t)`` for both networks at once, ``[2, B, out]``:
    ``SigmoidTanh``'s form from ``FUSED_MIN_ELEMENTS`` per network on the CPU,
    with its ``2 x`` folded into the ``baddbmm`` (``alpha = beta = 2``: a power
    of two, so the values are those of multiplying after, bit for bit)."""
    if sigmoid_form(x.device, x.shape[1] * weight_t.shape[2], FUSED_MIN_ELEMENTS):
        return tanh_from_sigmoid_(torch.baddbmm(bias, x, weight_t, beta=2.0, alpha=2.0).sigmoid_())
    return torch.baddbmm(bias, x, weight_t).tanh_()


def hidden_layers(views: ForwardViews, x: torch.Tensor) -> list[torch.Tensor]:
    """``[x, h1, ..., hn]``: the input as ``[2, B, in]`` (a broadcast view) and
    every hidden layer's output, actor's and critic's side by side ``[2, B, out]``."""
    out = [x.expand(2, *x.shape)]
    for weight_t, bias in zip(views.weights_t, views.biases, strict=True):
        out.append(tanh_layer(bias, out[-1], weight_t))
    return out


def heads(views: ForwardViews, last: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits [B, n], value [B, 1])`` from the last hidden layer's pair."""
    actor_h, critic_h = last.unbind(0)
    p = views.params
    return (
        torch.addmm(p.actor_bias, actor_h, views.actor_weight_t),
        torch.addmm(p.critic_bias, critic_h, views.critic_weight_t),
    )


def fused_act(
    views: ForwardViews, obs: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``ActorCritic.act``'s ``(action, log_prob, value)`` for a categorical policy."""
    logits, value = heads(views, hidden_layers(views, obs)[-1])
    log_probs = torch.log_softmax(logits, dim=-1)
    action = torch.argmax(log_probs + noise, dim=-1)  # Gumbel-max, as the plain path
    return action, log_probs.gather(-1, action.unsqueeze(-1)).squeeze(-1), value.squeeze(-1)
