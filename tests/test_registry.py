"""The registry: discovery, lookup errors, duplicates, users' own implementations, the recommended one."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import types

import pytest
import torch

import focalbench
from focalbench.arena import registry
from focalbench.arena.core import all_checks, evaluate
from focalbench.arena.families.softmax import CAPABILITIES
from focalbench.arena.registry import load_implementation, register

CHECKS = all_checks()

SEED_IMPLEMENTATIONS = {"scatter_mask", "gather", "compiled", "numpy_reference", "fused"}


def test_seed_implementations_are_registered():
    assert SEED_IMPLEMENTATIONS <= set(focalbench.list_implementations())


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"implementation must be one of .*gather.*\. Got: 'nope'"):
        focalbench.get_implementation("nope")


def test_duplicate_registration_is_an_error():
    with pytest.raises(ValueError, match=r"'gather' is already registered"):
        register("gather", family="softmax")(lambda args: args.logits.sum())


def test_unknown_capability_is_an_error():
    with pytest.raises(ValueError, match=r"capabilities must be among"):
        register("never_registered", family="softmax", capabilities={"teleport"})


def test_declared_limitation_is_refused_with_a_clear_error():
    seed = focalbench.get_implementation("scatter_mask")
    with pytest.raises(ValueError, match=r"'scatter_mask' does not support reduction:none"):
        seed(torch.zeros(2, 3), torch.tensor([0, 1]), reduction="none")
    with pytest.raises(ValueError, match=r"does not support dense"):
        seed(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"does not support ignore_index"):
        seed(torch.zeros(2, 3), torch.tensor([0, -100]))


def test_metadata_is_carried():
    impl = focalbench.get_implementation("compiled")
    assert impl.compiles and "cpu" in impl.devices and torch.float16 in impl.dtypes
    assert impl.capabilities <= CAPABILITIES
    assert all(d.reason for d in focalbench.get_implementation("scatter_mask").known_defects)


def test_recommended_implementation_has_no_known_defects():
    impl = focalbench.get_implementation(focalbench.RECOMMENDED)
    assert impl.known_defects == ()
    assert CAPABILITIES - impl.capabilities <= {"double_backward"}


def test_users_module_attr_is_loaded_and_checked(monkeypatch):
    def plain_cross_entropy(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        return torch.nn.functional.cross_entropy(logits, target, reduction=reduction, ignore_index=ignore_index)

    module = types.ModuleType("users_losses")
    module.plain_cross_entropy = plain_cross_entropy
    monkeypatch.setitem(sys.modules, "users_losses", module)
    impl = load_implementation("users_losses:plain_cross_entropy", "softmax")
    assert impl.external and impl.name == "users_losses:plain_cross_entropy"
    check = CHECKS["cross_entropy_at_gamma_zero"]
    assert evaluate(impl, check, check.cases()[0]).status == "pass"
    focal_case = next(c for c in CHECKS["matches_reference"].cases() if c.gamma == 2.0)
    assert evaluate(impl, CHECKS["matches_reference"], focal_case).status == "fail"  # CE is not a focal loss


def test_bad_module_attr_is_a_clear_error():
    with pytest.raises(ValueError, match=r"could not be loaded"):
        load_implementation("no_such_module_here:loss")


def test_focal_loss_computes_what_the_recommended_implementation_does():
    from focalbench.losses.softmax.api import implementation_for

    if "fused" in focalbench.list_implementations():
        assert implementation_for("cpu") == focalbench.RECOMMENDED
    from focalbench.kernels import triton

    assert implementation_for("cuda") == ("triton" if triton.UNAVAILABLE is None else "fused_eager")
    for dtype in (torch.float64, torch.float32):
        logits, target = torch.randn(5, 3, dtype=dtype), torch.tensor([0, 1, 2, 1, 0])
        expected = focalbench.get_implementation(implementation_for("cpu"))(logits, target, gamma=1.0)
        assert torch.equal(focalbench.focal_loss(logits, target, gamma=1.0), expected)


def test_every_declared_defect_is_exercised_by_an_applicable_case():
    """A known defect that no applicable case reaches would be a claim the suite never checks."""
    from focalbench.arena.core import applicability

    for name in focalbench.list_implementations():
        impl = focalbench.get_implementation(name)
        for defect in impl.known_defects:
            check = CHECKS[defect.check]
            reached = [
                case
                for case in check.cases()
                if defect.applies(check.name, case) and applicability(impl, check, case, "cpu") is None
            ]
            assert reached, f"{name}: no applicable case of {defect.check} reaches the defect {defect.reason!r}"


CONCURRENT_FIRST_CALLS = """
import json, threading, torch, focalbench
barrier, results, errors = threading.Barrier(8), {}, []

def call(i):
    logits = torch.randn(6, 5, generator=torch.Generator().manual_seed(i))
    barrier.wait()  # eight first calls at once, in a process that has not discovered anything yet
    try:
        results[i] = focalbench.focal_loss(logits, torch.tensor([0, 1, 2, 3, 4, 0])).item()
    except Exception as error:
        errors.append(f"{type(error).__name__}: {error}")

threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
sequential = {
    i: focalbench.focal_loss(torch.randn(6, 5, generator=torch.Generator().manual_seed(i)),
                             torch.tensor([0, 1, 2, 3, 4, 0])).item()
    for i in range(8)
}
print(json.dumps({"errors": errors, "same": all(results.get(i) == sequential[i] for i in range(8))}))
"""


def test_concurrent_first_calls_all_see_the_whole_registry():
    """Discovery is set done only after every implementation is imported, under a lock (a fresh process, 8 threads)."""
    done = subprocess.run(
        [sys.executable, "-c", CONCURRENT_FIRST_CALLS], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome == {"errors": [], "same": True}


def test_a_lookup_during_discovery_does_not_restart_it(monkeypatch):
    """An implementation module that looks the registry up while it is imported gets the registry so far."""
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    real_import = importlib.import_module
    nested = []

    def import_that_looks_up(name, *args):
        if name.startswith("focalbench.implementations."):
            nested.append(registry.list_implementations())  # re-enters _discover in the discovering thread
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", import_that_looks_up)
    assert "gather" in registry.list_implementations()
    assert nested and registry._DISCOVERED and not registry._DISCOVERING


def test_a_module_that_fails_to_import_is_unavailable_and_the_others_stay(monkeypatch):
    monkeypatch.setattr(registry, "_DISCOVERED", False)
    monkeypatch.setattr(registry, "_UNAVAILABLE", {})
    real_import = importlib.import_module

    def failing_import(name, *args):
        if name.endswith(".scatter_mask"):
            raise OSError("cannot read the module")
        return real_import(name, *args)

    monkeypatch.setattr(importlib, "import_module", failing_import)
    assert {"gather", "fused_eager"} <= set(registry.list_implementations())
    failed = {n: r for n, r in registry.unavailable_implementations().items() if r.startswith("importing it failed")}
    assert failed == {"scatter_mask": "importing it failed: OSError: cannot read the module"}  # peers may be absent
