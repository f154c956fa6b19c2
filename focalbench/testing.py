"""Certify your own focal loss inside your own pytest run (in the spirit of ``torch.library.opcheck``).

Two entry points, both running exactly what ``focalbench check`` runs (:func:`focalbench.arena.core.evaluate` on
every case of every check of the loss's family), with the callable's declarations read as
:func:`~focalbench.arena.registry.load_implementation` reads them (``focalbench_family``, ``focalbench_devices``,
``focalbench_dtypes``, ``focalbench_capabilities``, ``focalbench_known_defects``):

* :func:`check_loss` runs them all at once and raises one ``AssertionError`` listing every unexpected outcome;
* :func:`parametrize_checks` returns a pytest test function, one test per (check, case), so one line of a test file
  does it::

      # tests/test_my_loss.py
      from focalbench.testing import parametrize_checks
      from my_package.losses import my_focal_loss

      test_my_focal_loss = parametrize_checks(my_focal_loss, family="softmax")

  A failing case is a pytest failure naming the check, the case id (which ends in the seed) and the case's ``repr``
  (it rebuilds the inputs); a case covered by a declared known defect is an expected failure, and one whose defect no
  longer reproduces fails (strict); a case the loss does not declare support for (a capability, a dtype, a device)
  is skipped with the reason.

Importing this module imports nothing of the arena, of the implementations or of pytest; they are imported at the
first call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from focalbench.arena.core import Check, Outcome
    from focalbench.arena.registry import Implementation

__all__ = ["check_loss", "describe_outcome", "parametrize_checks"]


def _selected(
    loss: Callable | Implementation | str, family: str | None, checks: str | Iterable[Any] | None, device: str
) -> tuple[Implementation, list[Check]]:
    """The loss as an :class:`Implementation` and the checks of its family to run (every one when ``checks`` is
    None; names or :class:`Check` records otherwise).

    Raises:
        ValueError: the loss cannot be loaded, ``device`` is unknown, or a check is not one of its family's."""
    from focalbench.arena.family import get_family
    from focalbench.arena.registry import load_implementation

    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda'. Got: {device!r}")
    impl = load_implementation(loss, family)
    available = get_family(impl.family).all_checks()
    if checks is None:
        return impl, list(available.values())
    wanted = [checks] if isinstance(checks, str) else list(checks)
    names = [getattr(check, "name", check) for check in wanted]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise ValueError(f"checks must be among {impl.family}'s checks ({', '.join(available)}). Got: "
                         f"{', '.join(map(repr, unknown))}")  # fmt: skip
    return impl, [available[name] for name in dict.fromkeys(names)]


def describe_outcome(impl: Implementation, check: Check, case: Any, outcome: Outcome) -> str:
    """One outcome in the words a failure report needs: the loss, the check, the case id, the seed and the case's
    ``repr`` (module-qualified, so that it rebuilds the case), then the check's detail with its values."""
    from focalbench.arena.core import case_id

    seed = getattr(case, "seed", None)
    where = f"{impl.name} / {check.name} / {case_id(case)}" + ("" if seed is None else f" (seed={seed})")
    return f"{where}: {outcome.status}: {outcome.detail}\n    case: {type(case).__module__}.{case!r}"


def _require_device(device: str) -> str | None:
    """Why ``device`` cannot run here, or None."""
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            return "device='cuda' needs a CUDA device; torch.cuda.is_available() is False"
    return None


def check_loss(
    loss: Callable | Implementation | str,
    *,
    family: str | None = None,
    checks: str | Iterable[str | Check] | None = None,
    device: str = "cpu",
) -> dict[str, list[tuple[str, Outcome]]]:
    """Run every check of ``loss``'s family (or only ``checks``) on every case, as ``focalbench check`` does.

    Args:
        loss: your focal loss, a callable with the family's common signature that may carry the declaration
            attributes (``focalbench_capabilities`` ...); also a registered name, a ``"module:attr"`` or an
            :class:`~focalbench.arena.registry.Implementation`.
        family: the family of a loss that declares no ``focalbench_family`` (``"softmax"``, ``"sigmoid"`` ...): one
            of the two must name it.
        checks: check names (or records) of that family; default every one.
        device: ``"cpu"`` or ``"cuda"``.

    Returns:
        ``{check: [(case id, Outcome), ...]}``, every case's outcome (``pass``, ``xfail``, ``n/a``).

    Raises:
        AssertionError: some outcome is unexpected (a failure, or a declared known defect that no longer
            reproduces); the message lists every one (:func:`describe_outcome`).
        ValueError: the loss cannot be loaded or called as its family's, a check is unknown, or ``device`` is not
            available.

    Example:
        >>> import focalbench
        >>> from focalbench.testing import check_loss
        >>> def my_loss(logits, target, *, gamma=2.0, alpha=None, reduction="mean", ignore_index=-100):
        ...     return focalbench.focal_loss(logits, target, gamma=gamma, alpha=alpha, reduction=reduction,
        ...                                  ignore_index=ignore_index)
        >>> outcomes = check_loss(my_loss, family="softmax", checks=["cross_entropy_at_gamma_zero"])
        >>> sorted({o.status for _, o in outcomes["cross_entropy_at_gamma_zero"]})
        ['pass']
    """
    from focalbench.arena.core import case_id, evaluate

    impl, chosen = _selected(loss, family, checks, device)
    unavailable = _require_device(device)
    if unavailable:
        raise ValueError(unavailable)
    outcomes: dict[str, list[tuple[str, Outcome]]] = {}
    unexpected: list[str] = []
    cases = 0
    for check in chosen:
        outcomes[check.name] = []
        for case in check.cases():
            outcome = evaluate(impl, check, case, device)
            outcomes[check.name].append((case_id(case), outcome))
            cases += 1
            if outcome.unexpected:
                unexpected.append(describe_outcome(impl, check, case, outcome))
    if unexpected:
        raise AssertionError(
            f"{len(unexpected)} unexpected outcome(s) of {impl.name} in {cases} cases of {len(chosen)} check(s) on "
            f"{device} (fail, or a declared known defect that no longer reproduces):\n" + "\n".join(unexpected)
        )
    return outcomes


def parametrize_checks(
    loss: Callable | Implementation | str,
    *,
    family: str | None = None,
    checks: str | Iterable[str | Check] | None = None,
    device: str = "cpu",
) -> Callable[..., None]:
    """A pytest test function with one test per (check, case) of :func:`check_loss`'s run; assign it to a
    ``test_`` name in your test file::

        test_my_focal_loss = parametrize_checks(my_focal_loss, family="softmax", checks=["matches_reference"])

    Each test is named ``<check>-<case id>`` (the id ends in the case's seed); it passes, fails with
    :func:`describe_outcome`'s message, is an expected failure where a declared known defect applies (and fails
    when that defect no longer reproduces: strict), or is skipped with the reason the case does not apply (a
    capability, dtype or device the loss does not declare; ``device="cuda"`` without a CUDA device).

    The loss is loaded and the cases are built when pytest collects the file: a loss that cannot be loaded is a
    collection error with the reason. Arguments as :func:`check_loss`'s.
    """
    import pytest

    from focalbench.arena.core import case_id

    impl, chosen = _selected(loss, family, checks, device)
    params = [pytest.param(check, case, id=f"{check.name}-{case_id(case)}")
              for check in chosen for case in check.cases()]  # fmt: skip

    @pytest.mark.parametrize(("focalbench_check", "focalbench_case"), params)
    def test_focal_loss_check(focalbench_check: Check, focalbench_case: Any) -> None:
        from focalbench.arena.core import evaluate

        unavailable = _require_device(device)
        if unavailable:
            pytest.skip(unavailable)
        outcome = evaluate(impl, focalbench_check, focalbench_case, device)
        if outcome.status == "n/a":
            pytest.skip(outcome.detail)
        if outcome.status == "xfail":
            pytest.xfail(outcome.detail)
        if outcome.unexpected:
            pytest.fail(describe_outcome(impl, focalbench_check, focalbench_case, outcome), pytrace=False)

    test_focal_loss_check.__doc__ = f"{impl.name} holds on one case of one focalbench check ({impl.family} family)."
    return test_focal_loss_check
