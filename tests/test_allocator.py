"""Long-running processes reuse the memory they freed instead of faulting it in again."""

import platform
import subprocess
import sys

import pytest

# Allocates and frees a 2 MB buffer once, then counts the page faults of doing it again.
_PROBE = """
import resource, sys
from inference_club.allocator import keep_freed_memory
if sys.argv[1] == "kept":
    assert keep_freed_memory()
size = 2 * 1024 * 1024
buffer = bytearray(b"x" * size)
del buffer
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
buffer = bytearray(b"y" * size)
del buffer
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults_reusing_a_freed_buffer(mode: str) -> int:
    result = subprocess.run(  # noqa: S603 - the test's own interpreter
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's settings")
def test_a_freed_buffer_is_reused_without_page_faults() -> None:
    """A 2 MB buffer freed and made again costs the kernel no fresh pages once the allocator
    keeps freed memory; without it, every one of its 512 pages faults in again."""
    assert _faults_reusing_a_freed_buffer("default") >= 400
    assert _faults_reusing_a_freed_buffer("kept") < 50
