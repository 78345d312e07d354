"""Process-wide CPU memory settings, applied before torch allocates its first tensor.

The chunk backend allocates tensors of tens to hundreds of MiB per step at long contexts. By
default glibc serves each block above its mmap threshold (32 MiB at most) with new pages, which
the kernel zero-fills 4 KiB at a time on first touch, and returns them to the kernel on free.
At 16K tokens that page-fault work took longer than the op's matmuls (docs/benchmarks.md).
Two settings remove it:

- THP_MEM_ALLOC_ENABLE=1 makes PyTorch's CPU allocator align large tensors to 2 MiB and ask for
  transparent huge pages: one fault per 2 MiB instead of per 4 KiB, and fewer TLB misses.
- glibc's mallopt with no mmap blocks and no trimming: memory freed after one step is reused by
  the next instead of being returned and faulted in again.

Cost: the process keeps its peak memory until it exits. IDATTN_CPU_ALLOCATOR=default turns both off;
tuned (or unset) keeps them on.
"""

import ctypes
import os
import platform

ENV = "IDATTN_CPU_ALLOCATOR"
setting = "default"   # what this process runs with, for benchmark rows
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4   # glibc's mallopt parameter numbers (malloc.h)


def tune_cpu_allocator() -> str:
    """Apply the settings above unless IDATTN_CPU_ALLOCATOR=default; return what the process runs with.

    Raise ValueError for any value other than default or tuned. PyTorch reads the THP switch at its
    first large allocation, so the switch works only if this runs before torch is used. The mallopt
    settings work at any time.
    """
    global setting
    choice = os.environ.get(ENV, "tuned")
    if choice not in ("tuned", "default"):
        raise ValueError(f"invalid {ENV}={choice!r}; set it to default (leave the allocator as it is) or "
                         "tuned, or unset it for tuned")
    if choice == "default":
        return setting
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    setting = "thp"
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        libc = ctypes.CDLL("libc.so.6")
        if libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1:
            setting = "thp+glibc-keep"
    return setting
