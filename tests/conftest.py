import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)

# Gradio's file cache (uploads, served outputs) in a folder of this test run, removed after it: not the machine's
# shared /tmp/gradio, where a test's uploads would be left behind, and where a second run at the same time (same
# bytes -> same cached path) could delete a file this run is still reading. Set before any test imports gradio.
if "GRADIO_TEMP_DIR" not in os.environ:
    os.environ["GRADIO_TEMP_DIR"] = tempfile.mkdtemp(prefix="uvosam-tests-gradio-")
    atexit.register(shutil.rmtree, os.environ["GRADIO_TEMP_DIR"], True)

# ../shared beside the checkout; UVOSAM_SHARED_DIR overrides it (the GPU check carries a copy inside the tree)
SHARED = Path(
    os.environ.get("UVOSAM_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared"
)
FIXTURES = SHARED / "fixtures"
MEDIA = SHARED / "media"


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
