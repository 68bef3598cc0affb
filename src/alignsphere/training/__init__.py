"""Training encoders on the hypersphere with Lightning: config, module, resume.

Importing this package imports Lightning; ``alignsphere.losses`` and
``alignsphere.metrics`` do not need it.
"""

from alignsphere.training.checkpoint import (
    CHECKPOINT_SAFE_GLOBALS,
    CheckpointError,
    check_checkpoint,
    load_checkpoint,
    load_encoder,
    read_encoder_checkpoint,
    save_encoder_file,
)
from alignsphere.training.config import (
    ConfigError,
    DataConfig,
    HeldOutConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    TrainerConfig,
    bundled_config_names,
    config_from_dict,
    load_config,
)
from alignsphere.training.module import HypersphereModule, build_optimizer
from alignsphere.training.run import TrainResult, last_checkpoint_path, train

__all__ = [
    "CHECKPOINT_SAFE_GLOBALS",
    "CheckpointError",
    "ConfigError",
    "DataConfig",
    "HeldOutConfig",
    "HypersphereModule",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "TrainResult",
    "TrainerConfig",
    "build_optimizer",
    "bundled_config_names",
    "check_checkpoint",
    "config_from_dict",
    "last_checkpoint_path",
    "load_checkpoint",
    "load_config",
    "load_encoder",
    "read_encoder_checkpoint",
    "save_encoder_file",
    "train",
]
