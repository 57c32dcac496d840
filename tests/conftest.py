import atexit
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

# as `uvosam` and app.py do, before torch loads OpenMP: waiting threads sleep (the tests' own threads, ffmpeg and
# the servers they start get the cores; the suite used ~40% less CPU)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# gradio's usage statistics and version check (apps the tests launch in this process) and huggingface_hub's
# telemetry (sent by gradio_client's Client where a test turns offline mode off) ask no server
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# isort: split
import numpy as np
import pytest
import torch
from PIL import Image

from uvosam_app.process_folders import process_dir

sys.path.insert(0, str(Path(__file__).parent))

# the suite starts with none of the app's or the library's settings of the developer's shell (UVOSAM_MSDA=pytorch,
# UVOSAM_TRACKER, UVOSAM_LOG_LEVEL=DEBUG failed tests that check the defaults), in this process and in the app.py
# processes it starts; a test sets its own. UVOSAM_SHARED_DIR says where the fixtures are (below).
for _name in [
    name for name in os.environ if name.startswith("UVOSAM_") and name != "UVOSAM_SHARED_DIR"
]:
    del os.environ[_name]

torch.set_num_threads(2)

# This run's temp folders are made like the app's process folders (``process_dir``): marked as this process's, and
# those of earlier runs that were killed (SIGTERM from `timeout` or a cancelled CI job skips atexit) are removed
# when the next run starts.
SYSTEM_TMP = Path(tempfile.gettempdir())
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", str(SYSTEM_TMP))

# Gradio's file cache (uploads, served outputs) in a folder of this test run, removed after it: not the machine's
# shared /tmp/gradio, where a test's uploads would be left behind, and where a second run at the same time (same
# bytes -> same cached path) could delete a file this run is still reading. Set before any test imports gradio.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = str(process_dir(SYSTEM_TMP, "uvosam-tests-gradio-"))
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)

# The temp folder of this run (tempfile's, and $TMPDIR of the processes it starts), removed after it: gradio_client
# leaves an empty folder in the temp folder for every file it downloads (~1,000 a run; CI's /tmp held 71,000).
# pytest's own tmp_path folders stay where they were (PYTEST_DEBUG_TEMPROOT), kept for a look after a failure.
tempfile.tempdir = str(process_dir(SYSTEM_TMP, "uvosam-tests-tmp-"))
os.environ["TMPDIR"] = tempfile.tempdir
atexit.register(shutil.rmtree, tempfile.tempdir, True)

# ../shared beside the checkout; UVOSAM_SHARED_DIR overrides it (the GPU check carries a copy inside the tree)
SHARED = Path(
    os.environ.get("UVOSAM_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)
FIXTURES = SHARED / "fixtures"
MEDIA = SHARED / "media"


@pytest.fixture(scope="session", autouse=True)
def sam_fast_path_off_on_cpu():
    """SAM's fast path (bf16) is on by default on CPUs that compute bf16 natively, so the default would depend on
    the machine's CPU; the suite runs as on a CPU without it (exact float32 unless a test asks for the fast path).
    Tests of that default patch ``cpu_has_bf16`` themselves."""
    from uvosam import box_segmenter

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(box_segmenter, "cpu_has_bf16", lambda: False)
        yield


@pytest.fixture(autouse=True)
def hub_not_known_unreachable(monkeypatch):
    """Each test starts with no failed connection to the Hub remembered (``uvosam.hub`` looks in the HF cache only
    for a while after one): a test that met the real, unreachable Hub must not change how later tests' fakes are
    asked. And the Hub's host name resolves (on a machine without DNS, as CI's, it does not, and the Hub would be
    found unreachable before any test's fake of ``hf_hub_download`` is asked): tests of that check fake the lookup's
    failure themselves."""
    from uvosam import hub

    monkeypatch.setattr(hub, "_UNREACHABLE", {})
    monkeypatch.setattr(hub, "_host_lookup_failure", lambda host: None)


@pytest.fixture(autouse=True)
def offline_without_weights(monkeypatch, tmp_path):
    """Each test starts offline with no weight file to be found, whatever the machine has: ``HF_HUB_OFFLINE=1``
    (huggingface_hub's own flag too, read once at its import), ``$UVOSAM_CHECKPOINTS`` and the Hugging Face cache
    in folders that do not exist. A test that forgot a fake then fails at once, instead of waiting ~25 s for
    huggingface_hub's retries, downloading SAM on a machine with internet, or hashing a developer's cached copy.
    Tests of the online paths and of the default folders set their own (monkeypatch: ``delenv``/``setenv``)."""
    from huggingface_hub import constants as hf_constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("UVOSAM_CHECKPOINTS", str(tmp_path / "no-checkpoints"))
    # (the variable for the processes a test starts)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "no-hf-cache"))


@pytest.fixture(autouse=True)
def logger_levels_kept():
    """Each test ends with every logger's level, and the root's handlers, as it began: ``app.main`` (called
    in-process by tests of the app's start) sets the process's levels for good (``uvosam_app.server_log.set_up``:
    ``uvosam.job`` at WARNING), and a later test's ``caplog.at_level(logging.INFO, logger="uvosam")`` then missed
    that logger's lines."""
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    levels = {one: one.level for one in loggers if isinstance(one, logging.Logger)}
    handlers = list(logging.getLogger().handlers)  # and the root's handlers (basicConfig adds one)
    yield
    logging.getLogger().handlers[:] = handlers
    for one in logging.Logger.manager.loggerDict.values():
        if isinstance(one, logging.Logger):  # one made during the test: as made
            one.setLevel(levels.get(one, logging.NOTSET))
    logging.getLogger().setLevel(levels[logging.getLogger()])


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(
            f"the shared fixtures are expected at {FIXTURES} (a checkout of shared/ beside the repo)"
        )
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_sam_model():
    from uvosam.testing import tiny_sam

    return tiny_sam()


@pytest.fixture()
def frames_dir(tmp_path) -> Path:
    """A frame folder ``tmp_path/clip``: two 48x32 PNGs, 00000.png black and 00001.png grey (40)."""
    folder = tmp_path / "clip"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((32, 48, 3), 40 * i, np.uint8)).save(folder / f"{i:05d}.png")
    return folder


@pytest.fixture()
def no_models(monkeypatch):
    """Loading a model fails the test (``uvosam segment``'s pipeline, any tracker): for arguments that must be refused
    before the models load."""
    import uvosam_cli.segment
    from uvosam.tracker import loading

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded for arguments that are known to be bad")

    monkeypatch.setattr(uvosam_cli.segment, "load_pipeline", refuse)
    monkeypatch.setattr(loading, "load_tracker", refuse)


@pytest.fixture()
def weights_found(monkeypatch):
    """Both weight files count as found (``uvosam.pipeline.locate_weights``), for tests that replace the model loads
    themselves (``from_pretrained`` looks for both files before it loads either)."""
    from uvosam import pipeline

    monkeypatch.setattr(pipeline, "locate_weights", lambda *a, **k: (Path("tracker"), Path("sam")))


# the app tests' server, shared by every test file that asks for it (tests/test_app_*.py): started once
@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """The app tests' clips (``app_helpers.write_clips``)."""
    from app_helpers import write_clips

    return write_clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="session")
def tracker():
    """The tracker of ``server`` (a test may slow it down: ``delay_s``, put back after)."""
    from doubles import MovingBoxTracker

    return MovingBoxTracker(num_objects=2)


@pytest.fixture(scope="session")
def server(tmp_path_factory, tiny_sam_model, tracker):
    """(URL, work folder) of the app on a tiny pipeline (``app_helpers.tiny_app_server``), for the whole run."""
    pytest.importorskip("gradio")
    from app_helpers import tiny_app_server

    with tiny_app_server(tmp_path_factory.mktemp("work"), tiny_sam_model, tracker) as running:
        yield running
