"""MultiDiscrete policy heads equal independent torch categoricals."""

import torch

from esper.training.policy import distributions as multi_categorical

NVEC = (3, 2, 4)


def test_log_prob_entropy_and_mode_match_torch_distributions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(6, sum(NVEC))
    blocks = [torch.distributions.Categorical(logits=b) for b in logits.split(NVEC, dim=-1)]
    action = torch.stack([d.sample() for d in blocks], dim=-1)  # [6, 3]
    expected = sum(d.log_prob(a) for d, a in zip(blocks, action.unbind(-1), strict=True))
    assert torch.allclose(multi_categorical.log_prob(logits, action, NVEC), expected)
    assert torch.allclose(multi_categorical.entropy(logits, NVEC), sum(d.entropy() for d in blocks))
    modes = torch.stack([b.argmax(-1) for b in logits.split(NVEC, dim=-1)], dim=-1)
    assert torch.equal(multi_categorical.mode(logits, NVEC), modes)


def test_sampling_follows_the_probabilities() -> None:
    torch.manual_seed(1)
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5, -0.5]]).expand(20_000, -1)
    noise = -torch.log(-torch.log(torch.rand(20_000, 5).clamp_(1e-20, 1.0)))
    action, log_prob = multi_categorical.sample(logits, noise, (3, 2))
    first = torch.bincount(action[:, 0], minlength=3).float() / 20_000
    assert torch.allclose(first, torch.softmax(logits[0, :3], -1), atol=0.01)
    assert torch.allclose(log_prob, multi_categorical.log_prob(logits, action, (3, 2)))
