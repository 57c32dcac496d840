"""The models loaded at start: the default pair, then those of ``UVOSAM_PRELOAD``; what failed is logged for the
host (never raised: a Space that fails at start restarts in a loop) and told to the page (``StartModels``).
"""

from __future__ import annotations

import logging
from typing import Any

from uvosam.errors import WeightsError
from uvosam_app.models import (
    WEIGHTS_BAD,
    WEIGHTS_MISSING,
    GetPipeline,
    StartModels,
    sam2_missing,
)
from uvosam_app.settings import AppSettings

logger = logging.getLogger("uvosam.app")


def load_default(get_pipeline: GetPipeline, settings: AppSettings) -> StartModels:
    """Load the default models once at start, then those of ``settings.preload`` (``start_pairs``); missing/bad
    weights are logged for the host, not a crash.

    So is any other failure (a network error of the Hub client, a broken CUDA driver): a Space that raises here
    restarts in a loop and shows its users nothing. If the default pair failed, the page has a banner (for its
    visitors: the details, with server paths and the host's commands, are in the log) and Run tries loading again
    (not on ZeroGPU, where models load only at start). An extra model that failed while the defaults loaded gets
    no banner (the app works): its choice says so."""
    missing = sam2_missing()
    if missing:  # the page says only that the host has not installed it
        logger.warning("SAM 2.1 not offered: %s", missing)
    pairs = settings.start_pairs()
    pipe, default_failed = _load_pair(get_pipeline, *pairs[0], "the default models")
    extras_failed = {}
    for preset, sam in pairs[1:]:
        extra = preset if preset != settings.default_preset else sam  # the name UVOSAM_PRELOAD gave
        _, why = _load_pair(get_pipeline, preset, sam, f"{extra} (UVOSAM_PRELOAD)")
        # with the defaults loaded, the extra model is what failed
        if why is not None and default_failed is None:
            extras_failed[extra] = why
    if extras_failed:
        logger.warning(
            "the app serves the default models; not loaded at start (their choices say so): %s",
            ", ".join(extras_failed),
        )
    return StartModels(pipe, default_failed, extras_failed)


def _load_pair(
    get_pipeline: GetPipeline, preset: str, sam: str, what: str
) -> tuple[Any, str | None]:
    """(the pair's pipeline, None), or (None, why it did not load: ``StartModels.default_failed``'s values), the
    details logged for the host."""
    try:
        return get_pipeline(preset, sam), None
    except FileNotFoundError as err:
        logger.error("%s not loaded, %s + %s: %s", what, preset, sam, err)
        return None, WEIGHTS_MISSING
    except WeightsError as err:
        logger.error("%s not loaded, %s + %s: %s", what, preset, sam, err)
        return None, WEIGHTS_BAD
    except Exception as err:
        logger.exception("%s not loaded, %s + %s (unexpected error)", what, preset, sam)
        return None, type(err).__name__
