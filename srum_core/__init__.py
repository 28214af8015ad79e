"""SRUM engine: self-rewarding post-training of unified multimodal models.

Importing this package loads no weights and touches no argv; heavy pieces are imported where used.
"""

from .config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig
from .types import GlobalJudgement, Region, RegionJudgement, RewardMap, RewardReport, Sample

__all__ = [
    "GenerationConfig",
    "GlobalJudgement",
    "JudgeConfig",
    "Region",
    "RegionJudgement",
    "RewardConfig",
    "RewardMap",
    "RewardReport",
    "Sample",
    "TrainingConfig",
]

__version__ = "0.1.0"
