"""Build a C source with the system compiler, once, and load it with ctypes.

The shared library is cached under ``$FOCALBENCH_CACHE`` (default ``~/.cache/focalbench``), keyed by the source, the
flags, the compiler's version and the CPU (``-march=native`` code must not move to another processor). A build
writes to a temporary file and renames it into place, so concurrent first uses do not see a half-written library.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from focalbench.environment import cpu_model

__all__ = ["FLAGS", "NativeBuildError", "load"]

#: No -ffast-math: the kernels rely on IEEE rounding (exact differences, compensated formulas). -fno-trapping-math
#: only lets the compiler evaluate both sides of a select (no result changes); -fno-semantic-interposition lets it
#: inline and specialize within the library; 512-bit vectors where x86 has them. -fopenmp links libgomp by soname,
#: which resolves to the copy torch has already loaded, so the kernel shares torch's threads.
FLAGS = (
    "-O3",
    "-march=native",
    "-fopenmp",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fno-semantic-interposition",
    "-std=c11",
    "-fPIC",
    "-shared",
) + (("-mprefer-vector-width=512",) if platform.machine() in ("x86_64", "AMD64") else ())


class NativeBuildError(RuntimeError):
    """No C compiler, or the source did not compile."""


def _cache_dir() -> Path:
    return Path(os.environ.get("FOCALBENCH_CACHE", Path.home() / ".cache" / "focalbench"))


def load(source: Path) -> ctypes.CDLL:
    """Compile ``source`` (if not cached) and load it."""
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise NativeBuildError("no C compiler found (set CC or install gcc)")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise NativeBuildError(f"{compiler} --version failed: {error}") from error
    key = hashlib.sha256(
        "\0".join([source.read_text(), " ".join(FLAGS), version, platform.machine(), cpu_model()]).encode()
    ).hexdigest()[:16]
    cache = _cache_dir()
    library = cache / f"{source.stem}-{key}.so"
    if not library.exists():
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=cache)
        os.close(fd)
        try:
            result = subprocess.run(
                [compiler, *FLAGS, str(source), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=300
            )
            if result.returncode != 0:  # a compiler without OpenMP still gives a single-threaded kernel
                serial = [flag if flag != "-fopenmp" else "-fopenmp-simd" for flag in FLAGS]
                result = subprocess.run(
                    [compiler, *serial, str(source), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=300
                )
            if result.returncode != 0:
                raise NativeBuildError(f"{compiler} could not build {source.name}:\n{result.stderr[-2000:]}")
            os.replace(tmp, library)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return ctypes.CDLL(str(library))
