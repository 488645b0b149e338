from .laplace import (laplace_upsample_residual,
                      laplace_upsample_residual_reference)
from .scan import (BACKEND_TABLE, BACKENDS, SCAN_OP_HANDLES, resolve_backend,
                   selective_scan, selective_scan_parallel,
                   selective_scan_reference, triton_available)
from .scan.cross import cross_merge, cross_scan

__all__ = ['selective_scan', 'selective_scan_parallel',
           'selective_scan_reference', 'resolve_backend', 'triton_available',
           'BACKENDS', 'BACKEND_TABLE', 'SCAN_OP_HANDLES', 'cross_scan',
           'cross_merge', 'laplace_upsample_residual',
           'laplace_upsample_residual_reference']
