"""uvosam_ops: the Triton multi-scale deformable attention kernel (forward + backward) used by uvosam's tracker.

Importing this package imports Triton and decorates the kernels; under ``TRITON_INTERPRET=1`` (set before the
import) the kernels run in Triton's CPU interpreter, which the tests use. Models should not call this directly:
``uvosam.tracker.msda.ms_deform_attn`` dispatches to it on CUDA. See README.md in this folder.
"""

from .function import INTERPRETED, MSDeformAttnFunction, ms_deform_attn_triton

__version__ = "0.1"

__all__ = ["INTERPRETED", "MSDeformAttnFunction", "__version__", "ms_deform_attn_triton"]
