"""DlrmHSTU (the ranking part of Meta's HSTU) in PyTorch + TorchRec, built from the spec's config."""

from hstu_model.config import ConfigError, ModelConfig

__all__ = ["ConfigError", "ModelConfig"]
