"""The C allocator kept from handing freed memory back to the system between requests.

glibc's malloc gives the top of its heap back to the system whenever more than 128 KB is
free there, and serves each block over 128 KB (the threshold grows only when such a block is
freed) from a mapping of its own, unmapped when freed. A megabyte reply (an image, a speech)
passes through several buffers of that size, so each request paid for its memory again in
page faults, the kernel zeroing every page: about 1,100 faults and a third of the gateway's
CPU per 1.3 MB image. With both thresholds raised the process reuses what it freed: a heap
gives memory back only once more than ``KEEP_FREE_BYTES`` are free at its top, and only
blocks over ``OWN_MAPPING_BYTES`` get a mapping of their own. The price is memory: blocks up
to that size now come from the heap, which gives back only what is free at its top, so after
a burst of large replies a process may stay near the burst's peak.

These are glibc's settings (``mallopt``); with another C library nothing changes.
"""

import ctypes
import sys

KEEP_FREE_BYTES = 32 * 1024 * 1024
# glibc's upper bound for this threshold: 32 MB on 64-bit systems, 512 KB on 32-bit ones.
OWN_MAPPING_BYTES = 32 * 1024 * 1024 if ctypes.sizeof(ctypes.c_void_p) == 8 else 512 * 1024

# mallopt's parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory() -> bool:
    """Raise glibc's trim and mapping thresholds for this process; False where the C
    library is not glibc (or refused)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it: musl's mallopt does nothing
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    mapped = mallopt(_M_MMAP_THRESHOLD, OWN_MAPPING_BYTES)
    trimmed = mallopt(_M_TRIM_THRESHOLD, KEEP_FREE_BYTES)
    return bool(mapped and trimmed)
