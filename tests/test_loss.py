"""The class-balanced cross-entropy against hand-computed values and its analytic gradient."""

from __future__ import annotations

import pytest
import torch

from osvos_pl.model import class_balanced_bce

# Image A: one foreground pixel of four, so w+ = 3/4 and w- = 1/4.
#   logit  2, y=1: 0.75 * log(1 + e^-2) = 0.095196008
#   logit -1, y=0: 0.25 * log(1 + e^-1) = 0.078315422
#   logit  0, y=0: 0.25 * log 2         = 0.173286795
#   logit  3, y=0: 0.25 * log(1 + e^3)  = 0.762146838
LOGITS_A = [[2.0, -1.0], [0.0, 3.0]]
TARGET_A = [[1.0, 0.0], [0.0, 0.0]]
SUM_A = 1.108945063195207
# Image B: two foreground pixels of four, so w+ = w- = 1/2.
#   0.5 * (log(1+e^-1) + log(1+e^2) + log(1+e^0.5) + log(1+e^-3)) = 1.731427017
LOGITS_B = [[1.0, -2.0], [0.5, -3.0]]
TARGET_B = [[1.0, 1.0], [0.0, 0.0]]
SUM_B = 1.7314270171575221


def _t(rows: list[list[float]], dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(rows, dtype=dtype).view(1, 1, 2, 2)


def test_single_image_sum_matches_hand_computation():
    loss = class_balanced_bce(_t(LOGITS_A), _t(TARGET_A), reduction="sum")
    assert loss.item() == pytest.approx(SUM_A, rel=1e-12)


def test_single_image_mean_divides_by_pixel_count():
    loss = class_balanced_bce(_t(LOGITS_A), _t(TARGET_A), reduction="mean")
    assert loss.item() == pytest.approx(SUM_A / 4, rel=1e-12)


def test_batch_uses_per_image_weights_and_divides_by_batch_size():
    logits = torch.cat([_t(LOGITS_A), _t(LOGITS_B)])
    target = torch.cat([_t(TARGET_A), _t(TARGET_B)])
    assert class_balanced_bce(logits, target, "sum").item() == pytest.approx((SUM_A + SUM_B) / 2)
    assert class_balanced_bce(logits, target, "mean").item() == pytest.approx(
        (SUM_A / 4 + SUM_B / 4) / 2
    )
    # Weights pooled over the batch (3 fg of 8: w+ = 5/8, w- = 3/8) would give another value.
    pooled_weight = torch.where(target >= 0.5, 5 / 8, 3 / 8)
    pooled = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, target, weight=pooled_weight, reduction="sum"
    ) / 2
    assert abs(class_balanced_bce(logits, target, "sum").item() - pooled.item()) > 1e-3


def test_target_is_binarised_at_one_half():
    logits = _t(LOGITS_A)
    soft = _t([[0.5, 0.49], [0.0, 0.2]])
    assert class_balanced_bce(logits, soft).item() == pytest.approx(SUM_A, rel=1e-12)


def test_soft_targets_reduce_to_the_binary_loss_on_0_1_targets():
    logits = torch.cat([_t(LOGITS_A), _t(LOGITS_B)])
    target = torch.cat([_t(TARGET_A), _t(TARGET_B)])
    for reduction in ("sum", "mean"):
        assert class_balanced_bce(logits, target, reduction, soft=True).item() == pytest.approx(
            class_balanced_bce(logits, target, reduction).item(), rel=1e-12)


def test_soft_target_matches_hand_computation():
    # y = [0.5, 0.25, 0, 0.25]: mean 0.25, so w+ = 0.75, w- = 0.25; per pixel
    #   w+ y softplus(-x) + w- (1 - y) softplus(x)
    y = [[0.5, 0.25], [0.0, 0.25]]
    x = LOGITS_A
    sp = lambda v: float(torch.nn.functional.softplus(torch.tensor(v, dtype=torch.float64)))  # noqa: E731
    expected = sum(0.75 * yi * sp(-xi) + 0.25 * (1 - yi) * sp(xi)
                   for row_x, row_y in zip(x, y) for xi, yi in zip(row_x, row_y))
    got = class_balanced_bce(_t(x), _t(y), "sum", soft=True).item()
    assert got == pytest.approx(expected, rel=1e-12)
    assert got != pytest.approx(class_balanced_bce(_t(x), _t(y), "sum").item(), rel=1e-3)


def test_image_without_foreground_contributes_nothing():
    """As in the Caffe layer: with |Y+| = 0 the background weight |Y+|/|Y| is 0."""
    loss = class_balanced_bce(_t(LOGITS_A), torch.zeros(1, 1, 2, 2, dtype=torch.float64))
    assert loss.item() == 0.0


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_gradient_is_weighted_sigmoid_minus_target(reduction):
    torch.manual_seed(0)
    logits = (3 * torch.randn(2, 1, 5, 7, dtype=torch.float64)).requires_grad_()
    target = (torch.rand(2, 1, 5, 7, dtype=torch.float64) > 0.7).double()
    class_balanced_bce(logits, target, reduction).backward()
    fg_share = target.mean(dim=(1, 2, 3), keepdim=True)
    weight = torch.where(target > 0, 1 - fg_share, fg_share)
    scale = 2 * (35 if reduction == "mean" else 1)
    expected = weight * (torch.sigmoid(logits.detach()) - target) / scale
    torch.testing.assert_close(logits.grad, expected, rtol=1e-12, atol=1e-14)


def test_gradcheck_float64():
    torch.manual_seed(1)
    logits = torch.randn(2, 1, 3, 4, dtype=torch.float64, requires_grad=True)
    target = (torch.rand(2, 1, 3, 4, dtype=torch.float64) > 0.5).double()
    assert torch.autograd.gradcheck(lambda x: class_balanced_bce(x, target, "sum"), (logits,))


def test_stable_for_huge_logits():
    logits = torch.tensor([[1e4, -1e4], [-1e4, 1e4]]).view(1, 1, 2, 2).requires_grad_()
    target = _t([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float32)
    loss = class_balanced_bce(logits, target)
    loss.backward()
    # two confident right (loss 0), two confident wrong (0.5 * 1e4 each)
    assert loss.item() == pytest.approx(1e4)
    assert torch.isfinite(logits.grad).all()


def test_bf16_logits_give_a_float32_loss():
    loss = class_balanced_bce(_t(LOGITS_A, torch.bfloat16), _t(TARGET_A, torch.float32))
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(SUM_A, rel=1e-2)


def test_refuses_mismatched_shapes_and_unknown_reduction():
    with pytest.raises(ValueError, match="same"):
        class_balanced_bce(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4))
    with pytest.raises(ValueError, match="reduction"):
        class_balanced_bce(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), reduction="none")


def test_balanced_to_posterior_inverts_the_class_balancing():
    """The balanced loss's optimum for true probability q is p = (1-f)q / ((1-f)q + f(1-q));
    ``balanced_to_posterior`` maps it back to q, and q > 0.5 exactly where p > 1 - f."""
    import numpy as np

    from osvos_pl.model.loss import balanced_to_posterior

    q = np.linspace(0.01, 0.99, 99)
    for f in (0.02, 0.1, 0.5, 0.8):
        p = (1 - f) * q / ((1 - f) * q + f * (1 - q))
        np.testing.assert_allclose(balanced_to_posterior(p, f), q, rtol=1e-10)
        grid = np.linspace(0.0005, 0.9995, 1000)  # no point on the boundary 1 - f itself
        assert np.array_equal(balanced_to_posterior(grid, f) > 0.5, grid > 1 - f)


def test_balanced_loss_optimum_is_the_biased_probability():
    """Numerically: on pixels that are foreground with probability q, the balanced loss of an
    image with foreground share f is minimised by the biased p of the formula above."""
    f, q = 0.1, 0.3
    logit = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([logit], lr=2.0)
    for _ in range(500):
        optimizer.zero_grad()
        p = torch.sigmoid(logit)
        # expected weighted BCE of the ambiguous pixels: share q foreground (weight 1-f), rest bg (f)
        loss = -((1 - f) * q * torch.log(p) + f * (1 - q) * torch.log(1 - p))
        loss.backward()
        optimizer.step()
    expected = (1 - f) * q / ((1 - f) * q + f * (1 - q))
    assert float(torch.sigmoid(logit)) == pytest.approx(expected, abs=1e-3)
