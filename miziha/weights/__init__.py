"""Checkpoints into miziha networks: official PyTorch state dicts to Paddle arrays
(:func:`official_to_miziha`)."""

from .official import DERIVED_BUFFERS, RENAMED_BUFFERS, official_to_miziha

__all__ = ["official_to_miziha", "DERIVED_BUFFERS", "RENAMED_BUFFERS"]
