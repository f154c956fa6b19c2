"""Build a C source with the system compiler, once, and load it with ctypes; fail soft.

**Target.** ``$FOCALBENCH_CPU_TARGET`` picks the instruction set the kernel is compiled for (one switch for the
library, the tests and ``focalbench run --cpu-target``, recorded in every report's ``environment.kernel_build``):

* ``native`` (default): ``-march=native``, whatever this CPU has;
* ``x86-64-v4`` (AVX-512), ``x86-64-v3`` (AVX2 + FMA), ``x86-64-v2`` (SSE4.2, the portable fallback): the x86-64
  micro-architecture levels, so one machine can build and measure what an AVX2-only or an old CPU would run;
* ``generic``: the compiler's default target (no ``-march``), for any other architecture.

A named x86 target the CPU cannot execute is refused (the implementation is unavailable, with that reason) rather
than run into an illegal instruction.

**Cache.** The shared library is cached under ``$FOCALBENCH_CACHE`` (default ``~/.cache/focalbench``), keyed by the
source, the flags, the compiler's version and the CPU (``-march=native`` code must not move to another processor).
A build writes to a temporary file and renames it into place, under a lock (a thread lock and, where the platform
has it, a file lock), so concurrent first uses in threads or processes build once and never see a half-written
library. A build without OpenMP (the fallback when the OpenMP build fails) has flags of its own, hence a key of its
own: a degraded build is never cached as the good one. A cache that cannot be used (not a directory, read-only, a
library that another user owns or that does not load) is bypassed: the library is built in a private temporary
directory instead. Any failure to build or load raises :class:`NativeBuildError`, which the caller turns into "this
implementation is unavailable here" — never an error out of ``import focalbench``.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from focalbench.kernels.cpu_facts import cpu_flags, cpu_model

__all__ = [
    "TARGET_ENV",
    "TARGETS",
    "NativeBuildError",
    "TypedLibrary",
    "build_flags",
    "build_settings",
    "build_target",
    "load",
    "source_text",
]

TARGET_ENV = "FOCALBENCH_CPU_TARGET"

#: Named targets: their -march flag and the CPU flags a processor needs to run the code.
TARGETS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "native": (("-march=native",), frozenset()),
    "x86-64-v2": (("-march=x86-64-v2",), frozenset({"sse4_2", "popcnt", "ssse3"})),
    "x86-64-v3": (("-march=x86-64-v3",), frozenset({"avx2", "fma", "bmi2", "f16c", "movbe"})),
    "x86-64-v4": (("-march=x86-64-v4",), frozenset({"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"})),
    "generic": ((), frozenset()),
}
_X86 = platform.machine() in ("x86_64", "AMD64")

#: No -ffast-math: the kernels rely on IEEE rounding (exact differences, compensated formulas, inf and NaN).
#: -fno-trapping-math only lets the compiler evaluate both sides of a select (no result changes);
#: -fno-semantic-interposition lets it inline and specialize within the library. -fopenmp links libgomp by soname,
#: which resolves to the copy torch has already loaded, so the kernel shares torch's threads.
COMMON_FLAGS = (
    "-O3",
    "-fopenmp",
    "-fno-math-errno",
    "-fno-trapping-math",
    "-fno-semantic-interposition",
    "-std=c11",
    "-fPIC",
    "-shared",
)
BUILD_TIMEOUT_S = 300

_LOCK = threading.Lock()


class NativeBuildError(RuntimeError):
    """No usable C compiler, a source that did not compile, a target this CPU cannot run, or a library that would
    not load."""


def build_target() -> str:
    """The target named by ``$FOCALBENCH_CPU_TARGET`` (default ``native``).

    Raises:
        NativeBuildError: an unknown name, or an x86 level this CPU lacks.
    """
    target = os.environ.get(TARGET_ENV, "").strip() or "native"
    if target not in TARGETS:
        raise NativeBuildError(f"{TARGET_ENV} must be one of {', '.join(TARGETS)}. Got: {target!r}")
    required = TARGETS[target][1]
    if required and not _X86:
        raise NativeBuildError(f"{TARGET_ENV}={target} is an x86-64 level; this machine is {platform.machine()}")
    missing = sorted(required - cpu_flags()) if cpu_flags() else []
    if missing:
        raise NativeBuildError(f"{TARGET_ENV}={target} needs CPU flags this CPU lacks: {', '.join(missing)}")
    return target


def build_flags(target: str) -> tuple[str, ...]:
    """Compiler flags for ``target``: the common ones, its -march, and 512-bit vectors where it has AVX-512."""
    flags = COMMON_FLAGS + TARGETS[target][0]
    wide = target == "x86-64-v4" or (target == "native" and "avx512f" in cpu_flags())
    return flags + (("-mprefer-vector-width=512",) if _X86 and wide else ())


def build_settings() -> dict:
    """The build a report records: target and flags (an invalid target is recorded with its error); builds nothing."""
    try:
        target = build_target()
    except NativeBuildError as error:
        return {"target": os.environ.get(TARGET_ENV, ""), "flags": None, "error": str(error)}
    return {"target": target, "flags": " ".join(build_flags(target))}


@functools.cache
def _compiler() -> tuple[str, str]:
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        raise NativeBuildError("no C compiler found (set CC or install gcc)")
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise NativeBuildError(f"{compiler} --version failed: {error}") from error
    return compiler, version


def _cache_dir() -> Path:
    return Path(os.environ.get("FOCALBENCH_CACHE") or Path.home() / ".cache" / "focalbench")


def _usable_cache() -> Path | None:
    """The shared cache directory, created if needed, or None where it cannot hold a library."""
    try:
        cache = _cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        if not cache.is_dir() or not os.access(cache, os.W_OK | os.X_OK):
            return None
        return cache
    except (OSError, RuntimeError):  # RuntimeError: Path.home() without a home
        return None


def _trusted(library: Path) -> bool:
    """A cached library we may load: a regular file owned by this user, writable by no one else."""
    try:
        info = library.lstat()
    except OSError:
        return False
    owner_ok = not hasattr(os, "getuid") or info.st_uid == os.getuid()
    return stat.S_ISREG(info.st_mode) and owner_ok and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on ``path`` where the platform has one; no lock is not an error."""
    try:
        import fcntl

        handle = open(path, "a")  # noqa: SIM115 - held for the duration of the block
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        handle.close()


#: A build's temporary file: its process id in the name, so a later build can remove one whose process was killed.
_TMP_PREFIX = ".building-"


def _remove_stale_builds(directory: Path) -> None:
    """Delete the temporary files of builds whose process no longer runs (killed mid-build)."""
    for stray in directory.glob(f"{_TMP_PREFIX}*.so"):
        try:
            pid = int(stray.name[len(_TMP_PREFIX):].split("-", 1)[0])
            os.kill(pid, 0)  # raises when no such process exists
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                stray.unlink()
        except (ValueError, PermissionError, OSError):  # not ours to judge: another user's live process, a name
            continue


def _notice(message: str) -> None:
    """A one-line notice on stderr (a build takes seconds: say so, once, rather than stall in silence)."""
    print(f"focalbench: {message}", file=sys.stderr, flush=True)


def _compile(compiler: str, flags: tuple[str, ...], source: Path, output: Path) -> str | None:
    """Compile into ``output`` through a temporary file; None on success, else the compiler's complaint."""
    _remove_stale_builds(output.parent)
    _notice(f"building {source.name} for this CPU in {output.parent} (once; later runs load the cached library)")
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", suffix=".so", dir=output.parent)
    os.close(fd)
    try:
        result = subprocess.run(
            [compiler, *flags, str(source), "-o", tmp, "-lm"], capture_output=True, text=True, timeout=BUILD_TIMEOUT_S
        )
        if result.returncode != 0:
            return result.stderr[-2000:] or f"exit status {result.returncode}"
        os.chmod(tmp, 0o755)
        os.replace(tmp, output)
        return None
    except subprocess.TimeoutExpired:
        return f"timed out after {BUILD_TIMEOUT_S} s"
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def source_text(source: Path) -> str:
    """``source`` with the text of every local header it includes (``#include "name.h"``, beside it), in the order
    included: what a build compiles, hence what its cache key covers (a changed header rebuilds every kernel using it).
    """
    import re

    texts = [source.read_text()]
    for name in re.findall(r'^\s*#\s*include\s+"([^"]+)"', texts[0], re.MULTILINE):
        header = source.parent / name
        texts.append(f"{name}\0{header.read_text() if header.is_file() else ''}")
    return "\0".join(texts)


def _build_and_load(source: Path, directory: Path, flags: tuple[str, ...]) -> ctypes.CDLL | str:
    compiler, version = _compiler()
    key = hashlib.sha256(
        "\0".join([source_text(source), " ".join(flags), version, platform.machine(), cpu_model()]).encode()
    ).hexdigest()[:16]
    library = directory / f"{source.stem}-{key}.so"
    with _file_lock(directory / f".{source.stem}-{key}.lock"):
        if not _trusted(library):
            if library.exists() or library.is_symlink():
                return f"cached {library.name} is not a regular file of this user's"
            failure = _compile(compiler, flags, source, library)
            if failure is not None:
                return failure
        try:
            return ctypes.CDLL(str(library))
        except OSError as error:
            return f"built library would not load: {error}"


def load(source: Path) -> ctypes.CDLL:
    """Compile ``source`` for the configured target (if not cached) and load it.

    Raises:
        NativeBuildError: for any reason the library cannot be built or loaded, with that reason.
    """
    target = build_target()
    flags = build_flags(target)
    serial = tuple(flag if flag != "-fopenmp" else "-fopenmp-simd" for flag in flags)
    with _LOCK:
        try:
            shared = _usable_cache()
            if shared is None:
                _notice(f"the cache {_cache_dir()} is not a writable directory (FOCALBENCH_CACHE): the C kernel is "
                        "built in a temporary directory, again in every process")  # fmt: skip
            private: Path | None = None  # made when first needed: the shared cache is unusable or holds a bad library
            failures = []
            for attempt in (flags, serial):  # a compiler without OpenMP still gives a single-threaded kernel
                for directory in (shared, None) if shared is not None else (None,):
                    if directory is None:
                        private = private or Path(tempfile.mkdtemp(prefix="focalbench-"))
                        directory = private
                    outcome = _build_and_load(source, directory, attempt)
                    if isinstance(outcome, ctypes.CDLL):
                        return outcome
                    failures.append(f"{directory}: {outcome}")
                    if "error:" in outcome:  # a compile error does not depend on the directory
                        break
            raise NativeBuildError(f"could not build {source.name} for {target}:\n" + "\n".join(failures)[-3000:])
        except NativeBuildError:
            raise
        except Exception as error:  # an OS or interpreter error anywhere above: unavailable, never a crash
            raise NativeBuildError(f"could not build {source.name}: {type(error).__name__}: {error}") from error


#: The C types of the signature tables' scalars; every pointer is passed as c_void_p (a tensor's data_ptr() or None).
CTYPES = {
    "int": ctypes.c_int,
    "int64_t": ctypes.c_int64,
    "double": ctypes.c_double,
}


def _ctype(c_type: str):
    return ctypes.c_void_p if c_type.endswith("*") else CTYPES[c_type]


class TypedLibrary:
    """One kernel's C source, built at first use (:func:`load`) into a library of its own and loaded with each
    exported function typed from ``signatures`` (``{name: (return type, [(C type, parameter name), ...])}``, as the
    C source declares them; a test parses the prototypes and compares). A failed build is remembered, not retried at
    every call; it disables this library alone."""

    def __init__(self, source: Path, signatures: dict[str, tuple[str, list[tuple[str, str]]]]) -> None:
        self.source = source
        self.signatures = signatures
        self._parameters = {name: tuple(p for _, p in params) for name, (_, params) in signatures.items()}
        self._outcome: ctypes.CDLL | NativeBuildError | None = None
        self._functions: dict[str, Any] = {}  # the typed functions once built: a call's fixed cost counts
        self._lock = threading.Lock()

    def _build(self) -> ctypes.CDLL | NativeBuildError:
        with self._lock:
            if self._outcome is None:
                try:
                    lib = load(self.source)
                    functions = {}
                    for name, (restype, params) in self.signatures.items():
                        function = functions[name] = getattr(lib, name)
                        function.restype = _ctype(restype)
                        function.argtypes = [_ctype(c_type) for c_type, _ in params]
                    self._outcome, self._functions = lib, functions
                except NativeBuildError as error:
                    self._outcome = error
                except AttributeError as error:  # a library without one of the functions
                    self._outcome = NativeBuildError(f"{self.source.name}: {error}")
            return self._outcome

    def library(self) -> ctypes.CDLL:
        """The built library with every function typed (built once per process).

        Raises:
            NativeBuildError: it could not be built or loaded here (the reason is kept and raised again later).
        """
        outcome = self._build()
        if isinstance(outcome, NativeBuildError):
            raise outcome
        return outcome

    def available(self) -> str | None:
        """None when the library can run here, else why not (builds it if needed)."""
        outcome = self._build()
        return str(outcome) if isinstance(outcome, NativeBuildError) else None

    def call(self, name: str, **arguments):
        """Call ``name`` with arguments by their C parameter names (a missing or unknown name is a TypeError)."""
        params = self._parameters[name]
        try:
            if len(arguments) != len(params):
                raise KeyError
            ordered = [arguments[p] for p in params]
        except KeyError:
            raise TypeError(f"{name} takes {list(params)}. Got: {sorted(arguments)}") from None
        return self.function(name)(*ordered)

    def function(self, name: str):
        """The typed function ``name`` (the library built at first use), for a caller that passes its arguments
        positionally, in ``signatures``' order: :meth:`call`'s check of the names costs microseconds a call."""
        function = self._functions.get(name)
        return function if function is not None else getattr(self.library(), name)
