"""Facts about where a run happens: versions, CPU (model, SIMD extensions), threads, device, git commit.

The *machine fingerprint* names a machine kind: CPU model, widest SIMD extension, threads and torch version. Two
reports with different fingerprints were measured on different kinds of machine; the gate refuses to compare their
timings (:mod:`focalbench.bench.gate`).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy
import torch

from focalbench.bench.cpu_load import free_cores
from focalbench.kernels.cpu_facts import RELEVANT_CPU_FLAGS, cpu_flags, cpu_id, cpu_model, isa

__all__ = [
    "RELEVANT_CPU_FLAGS", "cpu_flags", "cpu_id", "cpu_model", "environment", "free_cores", "git_commit", "isa",
    "machine_fingerprint",
]  # fmt: skip


def machine_fingerprint(cpu: str, isa_name: str, threads: int, torch_version: str) -> str:
    """A short stable name of a machine kind: ``<isa>-<threads>t-<hash of cpu model and id, isa, threads, torch>``."""
    parts = [cpu, cpu_id(), isa_name, str(threads), torch_version]
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()[:10]
    return f"{isa_name}-{threads}t-{digest}"


def git_commit() -> str | None:
    """The commit of the working tree focalbench runs from (None outside a git checkout)."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment(device: str = "cpu") -> dict:
    """The ``environment`` block of a report (bandwidth is added by the runner that measured it)."""
    from focalbench.bench.product_source import product_source_fingerprint
    from focalbench.kernels.build import build_settings  # the kernel build target, read without building anything

    cuda = device == "cuda" and torch.cuda.is_available()
    threads = torch.get_num_threads()
    cpu, isa_name = cpu_model(), isa()
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_id": cpu_id(),
        "isa": isa_name,
        "cpu_flags": sorted(set(RELEVANT_CPU_FLAGS) & cpu_flags()),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "kernel_build": build_settings(),
        "machine_fingerprint": machine_fingerprint(cpu, isa_name, threads, torch.__version__),
        "device": device,
        "device_name": torch.cuda.get_device_name() if cuda else cpu,
        "cuda": torch.version.cuda if cuda else None,
        "git_commit": git_commit(),
        "product_source": product_source_fingerprint(),  # the code the product runs (focalbench.bench.product_source)
    }
