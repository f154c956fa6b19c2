"""Facts about where a run happens: versions, CPU (model, SIMD extensions), threads, device, git commit.

The *machine fingerprint* names a machine kind: CPU model, widest SIMD extension, threads and torch version. Two
reports with different fingerprints were measured on different kinds of machine; the gate refuses to compare their
timings (:mod:`focalbench.gate`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy
import torch

__all__ = [
    "RELEVANT_CPU_FLAGS", "cpu_flags", "cpu_id", "cpu_model", "environment", "git_commit", "isa", "machine_fingerprint",
]  # fmt: skip

#: The CPU flags that decide which vector code runs (x86 and ARM names as /proc/cpuinfo spells them).
RELEVANT_CPU_FLAGS = (
    "sse4_2", "popcnt", "avx", "avx2", "fma", "bmi2", "f16c", "movbe",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16", "amx_tile",
    "asimd", "sve", "sve2", "bf16",
)  # fmt: skip


@functools.cache
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.startswith(("model name", "Model")):  # x86; some ARM kernels say "Model"
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_id() -> str:
    """Vendor, family, model and stepping (x86) or implementer, part and variant (ARM): tells apart CPUs that share
    a marketing name (an "AMD EPYC" may be a Zen 3 with AVX2 or a Zen 4 with AVX-512)."""
    wanted = ("vendor_id", "cpu family", "model", "stepping", "CPU implementer", "CPU part", "CPU variant")
    facts: dict[str, str] = {}
    for line in _cpuinfo().splitlines():
        name, _, value = line.partition(":")
        if name.strip() in wanted and name.strip() not in facts:
            facts[name.strip()] = value.strip()
    return " ".join(f"{k}={v}" for k, v in facts.items()) or platform.machine()


@functools.cache
def cpu_flags() -> frozenset[str]:
    """Every flag the CPU reports (``flags`` on x86, ``Features`` on ARM); empty where the OS does not say."""
    for line in _cpuinfo().splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def isa(flags: frozenset[str] | None = None) -> str:
    """The widest SIMD extension the CPU has: avx512, avx2, avx, sse4_2, sve, neon or scalar."""
    flags = cpu_flags() if flags is None else flags
    for name, required in (
        ("avx512", {"avx512f", "avx512bw", "avx512dq", "avx512vl"}),
        ("avx2", {"avx2", "fma"}),
        ("avx", {"avx"}),
        ("sse4_2", {"sse4_2"}),
        ("sve", {"sve"}),
        ("neon", {"asimd"}),
    ):
        if required <= flags:
            return name
    return "neon" if platform.machine() in ("aarch64", "arm64") else "scalar"


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
    from focalbench.native import build_settings  # the kernel build target, read without building anything

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
    }
