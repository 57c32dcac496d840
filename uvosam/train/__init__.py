"""Mask-free training of the IDOL tracker from box labels (``uvosam train``; see README.md here).

Modules: ``config`` (TrainConfig), ``datasets`` (YouTube-VIS/OVIS JSON, DAVIS, folder), ``clips``
(sampling + augmentation + sharded clip stream), ``matcher`` + ``losses`` (IDOL's SimOTA
assignment and losses), ``build`` (initialisation, optimiser, lr schedule), ``checkpointing``,
``loop`` (``train``). The training tests' toy data and track scoring are in ``tests/train_helpers.py``.
"""

from pathlib import Path

TRAIN_README = Path(__file__).with_name("README.md")
"""The recipe and the data layouts; shipped with the package, so messages name it by this path."""
