"""The CPU dropout used by SASRec and HSTU: the right share dropped, unbiased, seeded, and the
gradient flows through the same mask."""

import pytest
import torch

from genrec.models.dropout import Dropout, dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_drops_share_p_in_every_lane_and_keeps_the_mean(p: float) -> None:
    torch.manual_seed(0)
    x = torch.ones(400_001)  # not a multiple of 4: the last 64-bit draw is used in part
    y = dropout(x, p)
    kept = y != 0
    # each 64-bit draw feeds four neighbouring elements: every lane must drop ~p on its own
    for lane in range(4):
        assert abs(kept[lane::4].float().mean().item() - (1 - p)) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], y[kept][0].item()))
    assert abs(y[kept][0].item() * (1 - p) - 1) < 1e-4  # scaled by 1 / keep probability
    assert abs(y.mean().item() - 1) < 0.01  # unbiased


def test_neighbouring_elements_are_independent() -> None:
    torch.manual_seed(1)
    kept = dropout(torch.ones(200_000), 0.5) != 0
    a, b = kept[0::2].float(), kept[1::2].float()
    both = (a * b).mean().item()
    assert abs(both - 0.25) < 0.006  # P(both kept) = P(kept)^2


def test_seeded_shaped_and_eval_is_identity() -> None:
    x = torch.randn(3, 5, 7)
    torch.manual_seed(2)
    y1 = dropout(x, 0.3)
    torch.manual_seed(2)
    y2 = dropout(x, 0.3)
    assert y1.shape == x.shape and torch.equal(y1, y2)
    assert not torch.equal(y1, dropout(x, 0.3))  # the generator moved on
    m = Dropout(0.3).eval()
    assert m(x) is x and dropout(x, 0.0) is x and dropout(x, 0.3, training=False) is x


def test_gradient_uses_the_same_mask() -> None:
    torch.manual_seed(3)
    x = torch.randn(64, 33, requires_grad=True)
    y = Dropout(0.4)(x)
    y.sum().backward()
    scale = y.detach()[y != 0] / x.detach()[y != 0]
    assert torch.allclose(x.grad[y != 0], scale)
    assert torch.all(x.grad[y == 0] == 0)


def test_bad_probability_is_refused() -> None:
    with pytest.raises(ValueError, match=r"dropout probability must be in \[0, 1\), got 1.0"):
        Dropout(1.0)
