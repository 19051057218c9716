"""PPO training on batched environments."""

from esper.training.loop import run_vectorized_ppo
from esper.training.report import TrainingResult

__all__ = ["TrainingResult", "run_vectorized_ppo"]
