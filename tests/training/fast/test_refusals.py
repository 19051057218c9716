"""The fast paths refuse what they cannot do in one line naming the setting,
before a batch runs, instead of failing inside one (issue 25's defects 5, 7, 8).

What a real GPU shows of the same (a capture that fails for real) is in
tests/training/test_cuda.py.
"""

from __future__ import annotations

import contextlib

import pytest
import torch

from esper.config.schema import PPOConfig
from esper.envs import make
from esper.runtime.errors import UserError
from esper.training.distributed.collectives import Collectives
from esper.training.fast import capture
from esper.training.fast.capture import GraphedAdvantages, batch_steps, uses_cuda_graphs


@pytest.mark.parametrize(
    "group", [Collectives(world_size=1, forced=True), Collectives(world_size=2)]
)
def test_cuda_graphs_on_in_any_process_group_is_refused(group: Collectives) -> None:
    """ESPER_FORCE_DIST=1 builds a group of one rank: its collectives would stay
    outside the captured update (no gradient all-reduce), so it is refused as
    several ranks are."""
    with pytest.raises(UserError) as refused:
        uses_cuda_graphs("on", torch.device("cuda"), make("cartpole", 2), group)
    assert refused.value.setting == "cuda_graphs"
    assert "process group" in refused.value.message and "off" in refused.value.message


def test_compile_on_a_torch_that_cannot_trace_backward_is_refused_before_a_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Older torch (no dynamo ``trace_autograd_ops``) would fail every compiled
    minibatch step at batch 1; the run is refused as it is built instead."""
    assert capture.traces_backward()  # this torch can: the check is a real one
    monkeypatch.setattr(capture, "traces_backward", lambda: False)
    capture.compiled_minibatch_step.cache_clear()
    try:
        with pytest.raises(UserError) as refused:
            batch_steps(
                PPOConfig(compile=True), torch.device("cpu"), make("cartpole", 2), Collectives()
            )
    finally:
        capture.compiled_minibatch_step.cache_clear()
    assert refused.value.setting == "compile"
    assert "backward" in refused.value.message and torch.__version__ in refused.value.message
    assert "\n" not in refused.value.one_line()


class FailingCapture:
    """torch.cuda's graph API as a capture that fails sees it: the error CUDA
    raises when a capture goes wrong (this machine has no GPU to fail one)."""

    def __init__(self) -> None:
        self.generators: list[torch.Generator] = []

    def register_generator_state(self, generator: torch.Generator) -> None:
        self.generators.append(generator)


@contextlib.contextmanager
def failing_graph(graph: FailingCapture):
    yield
    raise RuntimeError(
        "CUDA error: operation failed due to a previous error during capture\n"
        "CUDA kernel errors might be asynchronously reported at some other API call"
    )


def test_a_failed_capture_names_its_part_and_the_way_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "CUDAGraph", FailingCapture)
    monkeypatch.setattr(torch.cuda, "graph", failing_graph)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    ran = []
    with pytest.raises(UserError) as failed:
        GraphedAdvantages().capture("advantages", lambda: ran.append(1), [])
    assert ran == [1]
    message = failed.value.in_words({"cuda_graphs": "--cuda-graphs"}).one_line()
    assert message.startswith("--cuda-graphs: on: capturing the advantages as a CUDA graph failed")
    assert message.endswith("; use off") and "\n" not in message
    assert "operation failed due to a previous error during capture" in message
