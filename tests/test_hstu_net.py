"""HSTU's network: the training layout (right-padded, one mask for the batch) reads sequences exactly as
the inference layout (left-padded, a mask per row) does; attention-weight dropout is its own setting;
the fast dropout masks draw nn.Dropout's distribution; stochastic depth skips whole layers per row."""

from __future__ import annotations

import pytest
import torch

from genrec.models.hstu import HSTUConfig, HSTUNet
from genrec.models.sequential import Dropout, keep_mask

N_ITEMS = 50


def net(n_layers: int = 2, **kw) -> HSTUNet:
    torch.manual_seed(0)
    cfg = HSTUConfig(size="tiny", n_layers=n_layers, n_heads=2, dim=16, max_len=12, **kw)
    cfg.validate()
    return HSTUNet(cfg, N_ITEMS)


def batch(lens=(12, 5, 1, 9)) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded items and timestamps (B, T) for rows of the given lengths."""
    g = torch.Generator().manual_seed(1)
    T = max(lens)
    items = torch.zeros(len(lens), T, dtype=torch.long)
    ts = torch.zeros(len(lens), T, dtype=torch.long)
    for b, n in enumerate(lens):
        items[b, :n] = torch.randint(1, N_ITEMS + 1, (n,), generator=g)
        ts[b, :n] = torch.cumsum(torch.randint(0, 100_000, (n,), generator=g), 0)
    return items, ts


def right_to_left(x: torch.Tensor, lens) -> torch.Tensor:
    """Move each row's first n entries to the end (right-padded -> left-padded)."""
    out = torch.zeros_like(x)
    for b, n in enumerate(lens):
        out[b, x.shape[1] - n :] = x[b, :n]
    return out


def test_training_and_inference_layouts_give_the_same_hidden_states():
    lens = (12, 5, 1, 9)
    items, ts = batch(lens)
    model = net().eval()
    with torch.no_grad():
        right, _ = model(items, ts, left_pad=False)
        left, _ = model(right_to_left(items, lens), right_to_left(ts, lens), left_pad=True)
    for b, n in enumerate(lens):  # every real position, not only the last
        torch.testing.assert_close(right[b, :n], left[b, -n:], atol=1e-5, rtol=1e-5)


def test_attention_dropout_is_separate_from_dropout():
    items, ts = batch()
    plain = net(dropout=0.0, attn_dropout=0.0)
    with torch.no_grad():
        eval_out = plain.eval()(items, ts, left_pad=False)[0]
        train_out = plain.train()(items, ts, left_pad=False)[0]
    torch.testing.assert_close(train_out, eval_out)  # no dropout anywhere: training reads as evaluation
    attn_only = net(dropout=0.0, attn_dropout=0.5)
    with torch.no_grad():
        assert not torch.allclose(attn_only.train()(items, ts, left_pad=False)[0], eval_out)
        torch.testing.assert_close(attn_only.eval()(items, ts, left_pad=False)[0], eval_out)


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_bad_attention_dropout_is_a_clear_error(value):
    with pytest.raises(ValueError, match="attn_dropout must be in"):
        HSTUConfig(attn_dropout=value).validate()


def test_stochastic_depth_skips_a_layer_for_whole_rows_while_training_only():
    """drop_path=p on one layer: in training each row either skips the layer (its hidden states are
    the embeddings' alone) or gets the layer's branch scaled by 1 / (1 - p), about a share p skipping;
    evaluation is untouched. Deeper layers skip more often: p * (l + 1) / n_layers."""
    assert [layer.drop_path for layer in net(n_layers=4, drop_path=0.4).layers] == pytest.approx(
        [0.1, 0.2, 0.3, 0.4]
    )
    p = 0.3
    model = net(n_layers=1, dropout=0.0, attn_dropout=0.0, drop_path=p)
    items, ts = batch((12,))
    items, ts = items.repeat(2000, 1), ts.repeat(2000, 1)  # one sequence, 2,000 rows
    with torch.no_grad():
        model.eval()
        x = model.embed(items[:1], None)
        rel = model._rel(
            torch.arange(12)[None],
            torch.arange(12)[None],
            ts[:1],
            ts[:1],
            torch.ones(1, 12, 12).tril().bool(),
        )
        branch = model.layers[0](x, rel)[0] - x
        skipped, kept = model.ln_f(x)[0], model.ln_f(x + branch / (1 - p))[0]
        torch.testing.assert_close(model(items[:1], ts[:1], left_pad=False)[0][0], model.ln_f(x + branch)[0])
        out = model.train()(items, ts, left_pad=False)[0]  # (2000, 12, D)
    is_skipped = (out - skipped).abs().amax((1, 2)) < 1e-5
    is_kept = (out - kept).abs().amax((1, 2)) < 1e-5
    assert bool((is_skipped ^ is_kept).all())  # each row is one or the other, never a mix
    assert abs(is_skipped.float().mean().item() - p) < 0.04  # 2,000 draws: std ~0.01


@pytest.mark.parametrize("value", [-0.1, 1.0])
def test_bad_drop_path_is_a_clear_error(value):
    with pytest.raises(ValueError, match="drop_path must be in"):
        HSTUConfig(drop_path=value).validate()


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_dropout_draws_the_same_mask_distribution_as_nn_dropout(p):
    torch.manual_seed(0)
    x = torch.full((400, 1000), 2.0, requires_grad=True)
    ours, ref = Dropout(p).train()(x), torch.nn.Dropout(p).train()(x)
    for y in (ours, ref):  # kept entries are scaled by 1 / (1 - p), the rest are zero
        torch.testing.assert_close(torch.unique(y), torch.tensor([0.0, 2.0 / (1 - p)]))
    assert abs((ours == 0).float().mean().item() - p) < 0.005  # 400k draws: std ~0.0008
    ours.sum().backward()  # the gradient passes through the kept entries only
    torch.testing.assert_close(x.grad, ours.detach() / 2.0)
    assert Dropout(p).eval()(x) is x


def test_keep_mask_folds_a_broadcast_scale_into_the_mask():
    torch.manual_seed(0)
    scale = torch.tensor([[1.0, 2.0, 4.0]])  # (1, 3), broadcast over 20k rows
    mask = keep_mask((20_000, 3), 0.25, torch.device("cpu"), scale=scale)
    assert mask.shape == (20_000, 3)
    kept = mask != 0
    torch.testing.assert_close(mask[kept], (scale / 0.75).expand_as(mask)[kept])
    torch.testing.assert_close(mask.mean(0), scale[0], atol=0.05, rtol=0.02)  # unbiased: E[mask] = scale


def next_ts_of(ts: torch.Tensor, lens, request) -> torch.Tensor:
    """Right-padded (B, T): each position's next action's time, the last real one's at `request`."""
    out = torch.zeros_like(ts)
    for b, n in enumerate(lens):
        out[b, : n - 1] = ts[b, 1:n]
        out[b, n - 1] = request[b]
    return out


def test_query_time_next_measures_gaps_from_the_predicted_actions_time():
    """query_time=next: position i's time bias reads t_{i+1} - t_j (the last position's: the request's).
    Training (right-padded, the targets' times) and scoring (left-padded, the request time) read a
    sequence the same way; a later request changes the last position only; own ignores next_ts."""
    lens = (12, 5, 1, 9)
    items, ts = batch(lens)
    request = torch.tensor([ts[b, n - 1] + 50_000 for b, n in enumerate(lens)])
    nxt = next_ts_of(ts, lens, request)
    model = net(query_time="next").eval()
    own = net(query_time="own").eval()  # the same weights: only query_time differs
    with torch.no_grad():
        for i, (a, b) in enumerate(zip(model.layers, own.layers)):  # the biases start at 0: give them some
            bias = torch.randn(a.time_bias.shape, generator=torch.Generator().manual_seed(i))
            a.time_bias.copy_(bias)
            b.time_bias.copy_(bias)
        right, _ = model(items, ts, left_pad=False, next_ts=nxt)
        left, _ = model(
            right_to_left(items, lens),
            right_to_left(ts, lens),
            left_pad=True,
            next_ts=right_to_left(nxt, lens),
        )
        later, _ = model(items, ts, left_pad=False, next_ts=next_ts_of(ts, lens, request + 10_000_000))
        plain, _ = own(items, ts, left_pad=False)
        own_next, _ = own(items, ts, left_pad=False, next_ts=nxt)
    for b, n in enumerate(lens):
        torch.testing.assert_close(right[b, :n], left[b, -n:], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(later[b, : n - 1], right[b, : n - 1])  # causal: earlier positions same
        assert not torch.allclose(later[b, n - 1], right[b, n - 1], atol=1e-4)
        assert not torch.allclose(plain[b, :n], right[b, :n], atol=1e-4)
    torch.testing.assert_close(own_next, plain)  # own: next_ts does not reach the attention


def test_bad_query_time_is_a_clear_error():
    with pytest.raises(ValueError, match="query_time must be one of own, next"):
        HSTUConfig(query_time="target").validate()
