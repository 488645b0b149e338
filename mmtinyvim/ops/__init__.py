from .selective_scan import (BACKENDS, SCAN_OP_HANDLES, resolve_backend,
                             selective_scan, selective_scan_parallel,
                             selective_scan_reference)

__all__ = ['selective_scan', 'selective_scan_parallel',
           'selective_scan_reference', 'resolve_backend', 'BACKENDS',
           'SCAN_OP_HANDLES']
