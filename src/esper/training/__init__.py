"""PPO training on batched environments."""

from esper.training.vectorized import TrainingResult, run_vectorized_ppo

__all__ = ["TrainingResult", "run_vectorized_ppo"]
