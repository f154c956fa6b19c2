"""The CUDA path reads nothing back to the host in a training step: no synchronization in the forward or backward of
either family's loss, whatever the arguments (reductions, ignored elements, alpha as a float, a list or a device
tensor, gamma as a float or a schedule's tensor, the Module form).

On a CPU run the CUDA path runs in Triton's interpreter and :class:`focalbench.arena.sync.HostSyncs` stands in for
CUDA's detector; with ``--device cuda`` the same tests run on the GPU under ``torch.cuda.set_sync_debug_mode("error")``
too. The detector's own power is checked here as well: it catches the synchronizations the host-checking path makes
(``check_values()``, the CPU path's validation), and each kind of synchronizing operator.
"""

from __future__ import annotations

import pytest
import torch

import focalbench
from focalbench.arena.sync import HostSyncs, no_host_syncs
from focalbench.kernels import triton as triton_kernels
from focalbench.losses.sigmoid.api import sigmoid_focal_loss_on
from focalbench.losses.softmax.api import focal_loss_on

pytestmark = pytest.mark.skipif(triton_kernels.UNAVAILABLE is not None, reason=str(triton_kernels.UNAVAILABLE))

SOFTMAX_CALLS = {
    "mean": {},
    "sum": {"reduction": "sum"},
    "none": {"reduction": "none"},
    "alpha-float": {"alpha": 0.25},
    "alpha-list": {"alpha": [0.1, 0.2, 0.3, 0.4, 0.5]},
    "alpha-tensor": {"alpha": "tensor"},
    "gamma-schedule": {"gamma": "schedule"},
    "gamma-zero": {"gamma": 0.0},
}
SIGMOID_CALLS = {
    "none": {},
    "mean": {"reduction": "mean"},
    "sum-gamma-1.5": {"reduction": "sum", "gamma": 1.5},
    "gamma-schedule": {"reduction": "mean", "gamma": "schedule"},
    "unweighted": {"alpha": -1.0},
}


def _softmax_inputs(device: str, dense: bool):
    generator = torch.Generator().manual_seed(0)
    shape, target_shape = ((2, 5, 3, 4), (2, 3, 4)) if dense else ((16, 5), (16,))
    logits = (3 * torch.randn(shape, generator=generator)).to(device).requires_grad_()
    target = torch.randint(0, 5, target_shape, generator=generator).to(device)
    target.view(-1)[:3] = -100  # ignored elements
    return logits, target


def _resolve(kwargs: dict, device: str) -> dict:
    schedule = focalbench.LinearWarmupGamma(0.0, 2.0, 10)
    schedule.step()
    values = {"tensor": torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5], device=device), "schedule": schedule.gamma_tensor}
    return {key: values.get(value, value) if isinstance(value, str) else value for key, value in kwargs.items()}


def _step(loss_fn, logits, target, kwargs) -> None:
    loss = loss_fn(logits, target, **kwargs)
    loss.sum().backward()


@pytest.mark.parametrize("dense", [False, True], ids=["rows", "dense"])
@pytest.mark.parametrize("name", list(SOFTMAX_CALLS))
def test_the_softmax_cuda_path_reads_nothing_back_in_a_training_step(name: str, dense: bool, device: str) -> None:
    logits, target = _softmax_inputs(device, dense)
    kwargs = _resolve(SOFTMAX_CALLS[name], device)
    loss_fn = focal_loss_on("cuda")
    _step(loss_fn, logits, target, kwargs)  # a device tensor of weights is checked at its first use only
    # on CUDA the schedule's tensor lives on the host; on a CPU run every tensor of the call stands for a device one
    on_device = [v for v in kwargs.values() if isinstance(v, torch.Tensor) and v.device == logits.device]
    device_tensors = [logits, target, *on_device]
    with no_host_syncs(device_tensors):
        _step(loss_fn, logits, target, kwargs)
    assert logits.grad is not None and bool(torch.isfinite(logits.grad).all())


@pytest.mark.parametrize("name", list(SIGMOID_CALLS))
def test_the_sigmoid_cuda_path_reads_nothing_back_in_a_training_step(name: str, device: str) -> None:
    generator = torch.Generator().manual_seed(1)
    logits = (4 * torch.randn(8, 6, generator=generator)).to(device).requires_grad_()
    target = (torch.rand(8, 6, generator=generator) > 0.7).float().to(device)
    kwargs = _resolve(SIGMOID_CALLS[name], device)
    loss_fn = sigmoid_focal_loss_on("cuda")
    with no_host_syncs([logits, target]):
        _step(loss_fn, logits, target, kwargs)
    assert bool(torch.isfinite(logits.grad).all())


def test_the_module_form_with_a_weight_buffer_reads_nothing_back_after_its_first_call(device: str) -> None:
    criterion = focalbench.FocalLoss(gamma=2.0, alpha=[0.1, 0.2, 0.3, 0.4, 0.5]).to(device)
    logits, target = _softmax_inputs(device, dense=False)
    loss_fn = focal_loss_on("cuda")

    def step():
        loss_fn(logits, target, gamma=criterion.gamma, alpha=criterion.alpha).backward()

    step()
    with no_host_syncs([logits, target, criterion.alpha]):
        step()
    criterion.alpha.mul_(2)  # changed in place: checked again, once
    with HostSyncs([logits, target, criterion.alpha]) as syncs:
        step()
    assert syncs.caught, "an in-place change of the weights must be checked again"


def test_the_host_checking_path_is_caught_at_the_target_range_read(device: str) -> None:
    """What the detector catches on the path that checks values on the host (``check_values()``, which is what every
    call did before the CUDA path checked them on the device): the target's range read back (``aminmax`` then
    ``int``) and the mean's count."""
    logits, target = _softmax_inputs(device, dense=False)
    with focalbench.check_values(), HostSyncs([logits, target]) as syncs:
        _step(focal_loss_on("cuda"), logits, target, {})
    callers = " | ".join(where for _, where in syncs.caught)
    assert {name for name, _ in syncs.caught} == {"aten._local_scalar_dense.default"}
    assert "aminmax" in callers and "self.valid.sum()" in callers, syncs.report()


def test_the_sigmoid_host_checking_path_is_caught_at_the_target_range_read(device: str) -> None:
    logits = torch.randn(4, 3, device=device, requires_grad=True)
    target = torch.rand(4, 3, device=device)
    with focalbench.check_values(), HostSyncs([logits, target]) as syncs:
        _step(sigmoid_focal_loss_on("cuda"), logits, target, {})
    assert "aminmax" in syncs.report(), syncs.report()


def test_an_out_of_range_target_gives_nan_rows_on_the_cuda_path_and_an_error_under_check_values(device: str) -> None:
    logits = torch.zeros(4, 3, device=device, requires_grad=True)
    target = torch.tensor([0, 1, 3, -100], device=device)
    loss_fn = focal_loss_on("cuda")
    per_row = loss_fn(logits, target, reduction="none")
    assert torch.isnan(per_row).tolist() == [False, False, True, False]
    loss_fn(logits, target).backward()
    assert torch.isnan(logits.grad[2]).all() and torch.isfinite(logits.grad[[0, 1, 3]]).all()
    with focalbench.check_values(), pytest.raises(ValueError, match=r"target values must be in \[0, 3\)"):
        loss_fn(logits, target)


def test_a_device_gamma_out_of_range_gives_nan_not_a_number_read_back(device: str) -> None:
    logits, target = _softmax_inputs(device, dense=False)
    gamma = torch.tensor(-1.0, dtype=torch.float64, device=device)
    with HostSyncs([logits, target, gamma]) as syncs:
        loss = focal_loss_on("cuda")(logits, target, gamma=gamma)
    assert not syncs.caught and bool(torch.isnan(loss))
    assert bool(torch.isnan(sigmoid_focal_loss_on("cuda")(logits, torch.zeros_like(logits), gamma=gamma)).all())


@pytest.mark.parametrize(
    ("name", "operation"),
    [
        ("item", lambda x: x.sum().item()),
        ("bool", lambda x: bool((x > 0).any())),
        ("nonzero", lambda x: x.nonzero()),
        ("mask-index", lambda x: x[x > 0]),
        ("masked_select", lambda x: x.masked_select(x > 0)),
        ("unique", lambda x: torch.unique(x)),
    ],
)
def test_the_detector_catches_each_kind_of_synchronization(name: str, operation) -> None:
    x = torch.randn(5)
    with HostSyncs([x]) as syncs:
        operation(x.abs() + 1)  # computed from a device tensor: on the device too
    assert syncs.caught, f"{name} was not caught"


def test_the_detector_ignores_host_tensors_and_no_host_syncs_raises() -> None:
    device_tensor, host_tensor = torch.randn(3), torch.randn(3)
    with HostSyncs([device_tensor]) as syncs:
        float(host_tensor.sum())
        device_tensor * 2
    assert syncs.caught == []
    with pytest.raises(AssertionError, match="1 host synchronization"), no_host_syncs([device_tensor]):
        float(device_tensor.sum())
