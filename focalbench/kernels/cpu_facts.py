"""Facts about this CPU, read from ``/proc/cpuinfo``: model, identity, flags and the widest SIMD extension.

A leaf module (standard library only): the kernel build (:mod:`focalbench.kernels.build`) and the benchmark
environment (:mod:`focalbench.bench.environment`) both read it, so neither imports the other.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

__all__ = ["RELEVANT_CPU_FLAGS", "cpu_flags", "cpu_id", "cpu_model", "isa"]

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
