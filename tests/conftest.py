import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)

# ../shared beside the checkout; UVOSAM_SHARED_DIR overrides it (the GPU check carries a copy inside the tree)
SHARED = Path(os.environ.get("UVOSAM_SHARED_DIR") or Path(__file__).resolve().parents[1].parent / "shared")
FIXTURES = SHARED / "fixtures"
MEDIA = SHARED / "media"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"the shared fixtures are expected at {FIXTURES} (a checkout of shared/ beside the repo)")
    return FIXTURES


@pytest.fixture(scope="session")
def tiny_sam_model():
    from uvosam.testing import tiny_sam

    return tiny_sam()
