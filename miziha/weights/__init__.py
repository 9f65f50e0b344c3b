"""Checkpoints into miziha networks: read files without PyTorch (:mod:`.readers`), map
other sources' names (``KEY_MAPS`` beside each family) and layouts (:mod:`.convert`),
resize window tables (:mod:`.resize`), load with a report (:func:`load_pretrained`), and
``python -m miziha.weights convert`` (:mod:`.cli`)."""

from .convert import DERIVED_BUFFERS, RENAMED_BUFFERS, SOURCES, LoadReport, convert_state
from .load import convert_file, load_pretrained
from .official import official_to_miziha
from .readers import read_checkpoint

__all__ = ["load_pretrained", "LoadReport", "convert_file", "convert_state",
           "official_to_miziha", "read_checkpoint", "SOURCES", "DERIVED_BUFFERS",
           "RENAMED_BUFFERS"]
