from .selective_scan import (BACKENDS, SCAN_OP_HANDLES, SCAN_ORDERS,
                             cross_selective_scan, resolve_backend,
                             scan_pixel_order, selective_scan,
                             selective_scan_parallel,
                             selective_scan_reference, triton_available)

__all__ = ['selective_scan', 'selective_scan_parallel',
           'selective_scan_reference', 'cross_selective_scan',
           'scan_pixel_order', 'resolve_backend', 'triton_available',
           'BACKENDS', 'SCAN_ORDERS', 'SCAN_OP_HANDLES']
