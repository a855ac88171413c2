"""RowWiseAdamW: AdamW on dense gradients, row-wise AdaGrad on sparse ones."""

from __future__ import annotations

import torch

from genrec.models.optim import RowWiseAdamW, dense_grads


def test_dense_parameters_follow_torch_adamw():
    torch.manual_seed(0)
    a = torch.nn.Linear(8, 4)
    b = torch.nn.Linear(8, 4)
    b.load_state_dict(a.state_dict())
    ours = RowWiseAdamW(a.parameters(), lr=1e-2, weight_decay=0.1)
    ref = torch.optim.AdamW(b.parameters(), lr=1e-2, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.1)
    x = torch.randn(32, 8)
    for _ in range(20):
        for net, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            opt.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_sparse_rows_move_only_where_the_batch_touched_and_keep_one_number_each():
    torch.manual_seed(0)
    emb = torch.nn.Embedding(1000, 16, sparse=True)
    before = emb.weight.detach().clone()
    opt = RowWiseAdamW(emb.parameters(), lr=1e-3, sparse_lr=0.1)
    rows = torch.tensor([3, 7, 7, 500])
    opt.zero_grad()
    emb(rows).sum().backward()
    assert emb.weight.grad.is_sparse and dense_grads(emb.parameters()) == []
    opt.step()
    moved = (emb.weight.detach() != before).any(1).nonzero().flatten().tolist()
    assert moved == [3, 7, 500]
    state = opt.state[emb.weight]
    assert set(state) == {"sum"} and state["sum"].shape == (1000,)
    # row-wise AdaGrad: the first step moves each touched weight by sparse_lr * g / |g|_rms (= 0.1 here)
    step = (emb.weight.detach() - before)[[3, 500]].abs()
    torch.testing.assert_close(step, torch.full_like(step, 0.1), rtol=1e-4, atol=1e-6)


def test_optimizer_state_round_trips_for_resume():
    emb = torch.nn.Embedding(50, 4, sparse=True)
    opt = RowWiseAdamW(emb.parameters(), lr=1e-3)
    emb(torch.tensor([1, 2])).sum().backward()
    opt.step()
    again = RowWiseAdamW(emb.parameters(), lr=1e-3)
    again.load_state_dict(opt.state_dict())
    torch.testing.assert_close(again.state[emb.weight]["sum"], opt.state[emb.weight]["sum"])
