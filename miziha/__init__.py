"""miziha: Swin Transformer window attention as a drop-in ``nn.Conv2D`` replacement."""

from .swint import SwinT

__all__ = ["SwinT"]
__version__ = "0.1.0"
