"""A loss family defined in this file alone — one record, one case class, two checks, one implementation and its
reference — goes through ``list``, ``check``, ``run --quick`` and ``accuracy`` and is gated, without a shared module
knowing of it: the test of the design that a family is data. It has a parameter of its own (``power``, no gamma), which
its timings take, its report rows record and the gate keys its rows by."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy
import pytest
import torch
import torch.nn.functional as F

from focalbench.arena import family as families_module
from focalbench.arena import registry
from focalbench.arena.checks import accuracy_errors, matches_reference, rejects_bad_input
from focalbench.arena.core import DTYPE_NAMES, BadInput, Check, SampleCase, all_checks, evaluate, loss_and_grad
from focalbench.arena.family import Family, Labels, Shape, Sweep, Workload, get_family, register_family
from focalbench.cli import main
from focalbench.losses.common import REDUCTIONS, check_tensors, reduce_loss

FAMILY = "squared"


@dataclass(frozen=True)
class SquaredArgs:
    logits: torch.Tensor
    target: torch.Tensor
    reduction: str
    power: float = 2.0

    @property
    def count(self) -> int:
        return self.logits.numel()


def validate(logits, target, *, power=2.0, reduction="mean") -> SquaredArgs:
    """The power error |x - t|^power elementwise (the squared error at its default): a loss with an obvious
    reference."""
    check_tensors(logits, target)
    if isinstance(power, bool) or not isinstance(power, int | float) or not power >= 1:
        raise ValueError(f"power must be a number >= 1. Got: {power!r}")
    if tuple(target.shape) != tuple(logits.shape):
        raise ValueError(f"target must have the logits' shape {tuple(logits.shape)}. Got: {tuple(target.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}. Got: {reduction!r}")
    return SquaredArgs(logits, target.to(logits.dtype), reduction, float(power))


@dataclass(frozen=True)
class SquaredCase(SampleCase):
    family: ClassVar[str] = FAMILY

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32
    reduction: str = "mean"
    seed: int = 0

    @property
    def id(self) -> str:
        return f"{'x'.join(map(str, self.shape))}-{DTYPE_NAMES[self.dtype]}-{self.reduction}-seed{self.seed}"

    @property
    def loss_shape(self) -> tuple[int, ...]:
        return self.shape

    def make(self, device="cpu"):
        g = torch.Generator().manual_seed(self.seed)
        logits, target = torch.randn(self.shape, generator=g), torch.randn(self.shape, generator=g)
        return logits.to(device=device, dtype=self.dtype), target.to(device=device, dtype=self.dtype)

    def kwargs(self) -> dict:
        return {"reduction": self.reduction}

    def needs(self) -> set[str]:
        return set()


def _cases() -> list[SquaredCase]:
    return [SquaredCase((5, 3), reduction=r, dtype=d, seed=i) for i, (r, d) in enumerate(
        (r, d) for r in REDUCTIONS for d in (torch.float32, torch.float64))]  # fmt: skip


def _bad_inputs() -> list[BadInput]:
    return [BadInput("target-shape", "target", ValueError, lambda d: (torch.zeros(2, 3), torch.zeros(3), {})),
            BadInput("reduction", "reduction", ValueError, lambda d: (torch.zeros(2), torch.zeros(2),
                                                                        {"reduction": "avg"}))]  # fmt: skip


def _errors(impls, magnitude, dtype, device):
    x = torch.tensor([magnitude, -magnitude, 0.5], dtype=torch.float64)
    t = torch.tensor([0.0, 1.0, 0.5], dtype=torch.float64)
    found = {}
    for impl in impls:
        loss, grad = loss_and_grad(impl, x.to(dtype), t.to(dtype), {"reduction": "none"})
        exact = (x.to(dtype).double() - t) ** 2, 2 * (x.to(dtype).double() - t)
        errors = accuracy_errors(loss, grad.reshape(-1, 1), exact[0], exact[1].reshape(-1, 1), dtype)
        found[impl.name] = [(*errors, f"|x|={magnitude:g}")]
    return found


RECORD = Family(
    name=FAMILY,
    description="squared error, a toy family",
    validate=validate,
    defaults={"power": 2.0, "reduction": "mean"},
    parameters={"power": 2.0},
    capabilities=frozenset({"double_backward"}),
    call_needs=lambda args, capabilities: [],
    reference="squared_reference",
    gradient_penalty_reference="squared_torch",
    recommended="squared_torch",
    checks=lambda: (
        Check("squared_matches_reference", "loss and gradient equal the float64 reference", matches_reference, _cases,
              skip_reference=True, family=FAMILY),
        Check("squared_rejects_bad_input", "bad arguments raise naming the argument", rejects_bad_input, _bad_inputs,
              family=FAMILY),
    ),  # fmt: skip
    workload=Workload(
        baseline="mse_loss",
        baseline_loss=lambda x, t: F.mse_loss(x, t, reduction="sum"),
        inputs=lambda shape, dtype, device, seed=0: SquaredCase(shape.shape, dtype, seed=seed).make(device),
        call=lambda impl, x, t, parameters: impl(x, t, reduction="sum", **parameters),
        needs=lambda shape: set(),
        target_bytes=lambda shape, dtype: shape.numel * torch.empty((), dtype=dtype).element_size(),
        shapes=(Shape("squared_rows", (512, 16), "a small batch"), Shape("squared_big", (2**16, 16), "sweep", True)),
    ),
    sweep=Sweep(axis="|x|", values=(1.0, 1e3), errors=_errors, description="the squared error by |x|"),
    labels=Labels(baseline="F.mse_loss", sweep_rows="rows (16 columns)", accuracy_axis="|x|"),
)


def _squared(args: SquaredArgs) -> torch.Tensor:
    """The power error in PyTorch operations."""
    return reduce_loss((args.logits - args.target).abs() ** args.power, args)


def _squared_reference(args: SquaredArgs) -> torch.Tensor:
    """The squared error in float64 NumPy, its gradient written by hand."""

    class Reference(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits):
            x, t = logits.detach().double().cpu().numpy(), args.target.double().cpu().numpy()
            p = args.power
            ctx.save_for_backward(torch.from_numpy(p * numpy.abs(x - t) ** (p - 1) * numpy.sign(x - t)))
            value = numpy.abs(x - t) ** p
            return reduce_loss(torch.from_numpy(value), args).to(logits.dtype)

        @staticmethod
        def backward(ctx, grad_output):
            (grad,) = ctx.saved_tensors
            scale = 1.0 / max(args.count, 1) if args.reduction == "mean" else 1.0
            return (grad * scale * grad_output.double()).to(grad_output.dtype)

    return Reference.apply(args.logits)


@pytest.fixture()
def squared_family():
    register_family(RECORD)
    registry.register("squared_torch", family=FAMILY, devices=("cpu",))(_squared)
    registry.register("squared_reference", family=FAMILY, devices=("cpu",), capabilities=())(_squared_reference)
    try:
        yield RECORD
    finally:
        registry.unregister("squared_torch")
        registry.unregister("squared_reference")
        families_module.unregister_family(FAMILY)


def test_a_family_is_registered_and_unregistered(squared_family):
    assert get_family(FAMILY) is squared_family
    assert set(registry.list_implementations(FAMILY)) == {"squared_torch", "squared_reference"}
    assert set(all_checks(FAMILY)) == {"squared_matches_reference", "squared_rejects_bad_input"}
    with pytest.raises(ValueError, match="family name must be unique: 'squared'"):
        register_family(Family(**{**RECORD.__dict__}))


def test_the_generic_checks_judge_the_new_family(squared_family):
    impl = registry.get_implementation("squared_torch")
    for check in all_checks(FAMILY).values():
        outcomes = [evaluate(impl, check, case).status for case in check.cases()]
        assert set(outcomes) == {"pass"}, (check.name, outcomes)
    wrong = registry.Implementation("wrong", lambda x, t, reduction="mean": reduce_loss(
        (x - t).abs(), validate(x, t, reduction=reduction)), family=FAMILY)  # fmt: skip
    check = all_checks(FAMILY)["squared_matches_reference"]
    assert {evaluate(wrong, check, case).status for case in check.cases()} == {"fail"}
    softmax_check = next(iter(get_family("softmax").all_checks().values()))
    assert evaluate(impl, softmax_check, softmax_check.cases()[0]).status == "n/a"  # another family's


def test_list_check_run_and_accuracy_take_the_new_family(squared_family, tmp_path, capsys):
    assert main(["list", "--family", FAMILY]) == 0
    listed = capsys.readouterr().out
    assert "squared_torch" in listed and "fused" not in listed

    assert main(["check", "--family", FAMILY]) == 0
    matrix = capsys.readouterr().out
    assert "squared_matches_reference" in matrix and "squared_torch" in matrix and "gather" not in matrix

    assert main(["run", "--quick", "--family", FAMILY, "--rounds", "2", "--output", str(tmp_path)]) == 0
    report = json.loads(next(tmp_path.glob("focalbench-*.json")).read_text())
    assert report["settings"]["family"] == FAMILY and report["settings"]["shapes"] == ["squared_rows"]
    assert {json.dumps(r["parameters"]) for r in report["results"]} == {'{"power": 2.0}'}  # the family's, no gamma
    assert {r["implementation"] for r in report["results"]} == {"mse_loss", "squared_torch", "squared_reference"}
    assert {r["baseline"] for r in report["results"]} == {"mse_loss"}
    assert all(math.isfinite(r["ratio_to_baseline"]) for r in report["results"])
    assert report["checks"]["squared_torch"] == {"squared_matches_reference": "pass",
                                                 "squared_rejects_bad_input": "pass"}  # fmt: skip
    capsys.readouterr()

    assert main(["accuracy", "--family", FAMILY, "--output", str(tmp_path)]) == 0
    accuracy = json.loads(next(tmp_path.glob("accuracy-*.json")).read_text())
    assert accuracy["family"] == FAMILY
    assert {(r["implementation"], r["gap"]) for r in accuracy["rows"]} == {
        (name, value) for name in ("squared_torch", "squared_reference") for value in (1.0, 1e3)}  # fmt: skip
    assert all(max(r["max_loss_error"], r["max_grad_error"]) < 1e-6 for r in accuracy["rows"])


def test_an_unknown_family_is_a_one_line_usage_error(capsys):
    assert main(["list", "--family", "nonesuch"]) == 2
    assert "focalbench list: --family must be one of softmax, sigmoid" in capsys.readouterr().err


def test_the_gate_times_a_new_family_without_being_edited(squared_family):
    """The gated rows come from the family records: the recommended implementation at every representative shape in
    float32, its bfloat16 path at the first one; a registered family is gated by being registered."""
    from focalbench.bench.gated import plan

    gated, skipped = plan()
    by_family = {g.family: g for g in gated}
    assert list(by_family)[:2] == ["softmax", "sigmoid"] and list(by_family)[-1] == FAMILY and not skipped
    squared = by_family[FAMILY]
    assert (squared.impl, squared.shapes, squared.half_shape) == ("squared_torch", ("squared_rows",), "squared_rows")
    assert squared.run_args() == [
        ["--family", FAMILY, "--impl", "squared_torch", "--quick", "--skip-checks", "--dtype", "float32",
         "--shape", "squared_rows"],
        ["--family", FAMILY, "--impl", "squared_torch", "--quick", "--skip-checks", "--dtype", "bfloat16",
         "--shape", "squared_rows"],
    ]  # fmt: skip
    assert by_family["softmax"].shapes == ("yolov2_voc", "coco_rows", "imagenet", "segmentation")
    assert by_family["sigmoid"].shapes == ("retinanet_rows", "retinanet_dense")
    assert (by_family["softmax"].impl, by_family["sigmoid"].impl) == ("fused", "sigmoid_fused")
    # a user's implementation instead of the products, in its family
    (mine,), _ = plan("squared_reference", [FAMILY])
    assert (mine.family, mine.impl) == (FAMILY, "squared_reference")


def test_the_docs_get_the_new_familys_tables_without_being_edited(squared_family, tmp_path):
    """A registered family's generated tables are never silently absent from the docs: `focalbench docs --check`
    names the missing blocks, and `focalbench docs` adds each after the same table of another family."""
    import shutil

    from focalbench.bench import tables
    from focalbench.cli.docs import GENERATORS

    root = Path(__file__).resolve().parent.parent
    shutil.copy2(root / "README.md", tmp_path / "README.md")
    shutil.copytree(root / "docs", tmp_path / "docs")
    shutil.copytree(root / "results", tmp_path / "results", ignore=shutil.ignore_patterns("history", "figures"))
    expected = [f"checks-{FAMILY}", f"conformance-{FAMILY}", f"speed-{FAMILY}"]
    assert tables.missing(tmp_path, GENERATORS) == expected
    # what --check fails on (and the implementations table, which lists the family's two implementations now)
    assert tables.stale(tmp_path, GENERATORS) == ["implementations", *expected]
    assert tables.refresh(tmp_path, GENERATORS) == ["implementations", *expected]
    checks = (tmp_path / "docs" / "checks.md").read_text()
    assert checks.index("<!-- END generated: checks-sigmoid -->") < checks.index(f"**The {FAMILY} family**") \
        < checks.index(f"<!-- BEGIN generated: checks-{FAMILY} -->")  # fmt: skip
    body = tables.generators(GENERATORS)[f"checks-{FAMILY}"](tmp_path)
    assert body.count("\n| `") >= 1 and f"-->\n{body}<!-- END generated: checks-{FAMILY} -->" in checks
    assert f"<!-- BEGIN generated: speed-{FAMILY} -->" in (tmp_path / "docs" / "results.md").read_text()
    assert tables.stale(tmp_path, GENERATORS) == [] and tables.missing(tmp_path, GENERATORS) == []


def test_the_new_familys_parameter_is_timed_recorded_and_keys_its_gate_rows(squared_family, tmp_path, capsys):
    """``run --param power=3`` times the family at its own parameter; the rows record it; the gate keys rows by it,
    so a row timed at power 3 is never compared with one at power 2, and names it in its table."""
    from focalbench.bench.gate import _key, compare_reports
    from focalbench.bench.report import read_report

    argv = ["run", "--quick", "--family", FAMILY, "--impl", "squared_torch", "--rounds", "2", "--skip-checks"]
    assert main([*argv, "--param", "power=3", "--output", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("focalbench-*.json")
    report = read_report(path)
    assert {json.dumps(r["parameters"]) for r in report["results"]} == {'{"power": 3.0}'}
    assert {_key(r) for r in report["results"]} == {
        (name, "squared_rows", "float32", "forward+backward", "power 3.0") for name in ("squared_torch", "mse_loss")}
    other = json.loads(json.dumps(report))
    for row in other["results"]:
        row["parameters"] = {"power": 2.0}
    with pytest.raises(ValueError, match="the reports must share timing rows"):
        compare_reports(report, other, 0.5)
    assert main([*argv, "--param", "gamma=2", "--output", str(tmp_path)]) == 2
    assert "--param gamma: the squared family's timed parameters are power. Got: 'gamma'" in capsys.readouterr().err


def test_a_check_against_the_derivative_is_not_applicable_where_the_gradient_is_not_one(squared_family):
    """A family says which calls return a gradient that is not their loss's derivative (a weight held constant, as
    RT-DETR's varifocal loss holds it); finite-difference checks are then not applicable to those calls, saying why,
    rather than failing them or passing them silently."""
    import dataclasses

    from focalbench.arena.checks import gradcheck

    check = Check("squared_gradcheck", "gradcheck", gradcheck, lambda: [SquaredCase((3, 2), torch.float64)],
                  family=FAMILY)  # fmt: skip
    impl = registry.get_implementation("squared_torch")
    (case,) = check.cases()
    assert evaluate(impl, check, case).status == "pass"
    families_module.unregister_family(FAMILY)
    register_family(dataclasses.replace(RECORD, gradient_is_derivative=lambda keywords: False))
    outcome = evaluate(impl, check, case)
    assert outcome.status == "n/a" and "not its loss's derivative" in outcome.detail
    explicit = dataclasses.replace(check, fn=lambda impl, case, device: None, derivative_only=True)
    assert evaluate(impl, explicit, case).status == "n/a"
    assert evaluate(impl, dataclasses.replace(check, derivative_only=False), case).status == "pass"
