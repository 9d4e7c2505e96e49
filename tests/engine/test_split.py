"""Split: the in-memory and lazy kinds give the same seeded batches; fit() trains on both alike."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from rttui.engine.data import Split


def _splits(n: int = 23) -> tuple[Split, Split]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 8, 8, generator=g)
    y = torch.arange(n) % 3
    return Split(x, y), Split(y=y, dataset=TensorDataset(x, y), workers=0)


def test_lazy_and_memory_batches_are_identical_for_a_seed() -> None:
    mem, lazy = _splits()
    assert lazy.lazy and not mem.lazy
    for seed in (0, 1):
        a = list(mem.batches(5, shuffle=True, generator=torch.Generator().manual_seed(seed)))
        b = list(lazy.batches(5, shuffle=True, generator=torch.Generator().manual_seed(seed)))
        assert [len(yb) for _, yb in a] == [5, 5, 5, 5, 3]
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    o0 = torch.cat([yb for _, yb in mem.batches(5, True, torch.Generator().manual_seed(0))])
    o1 = torch.cat([yb for _, yb in mem.batches(5, True, torch.Generator().manual_seed(1))])
    assert not torch.equal(o0, o1)  # another seed, another order
    # Unshuffled: the split's own order; a lazy split materializes to the same tensor.
    assert torch.equal(torch.cat([xb for xb, _ in lazy.batches(7)]), mem.x)
    assert torch.equal(lazy.x, mem.x)


def test_fit_gives_the_same_model_on_lazy_and_memory_splits() -> None:
    import timm

    from rttui.engine.train import fit

    mem, lazy = _splits(16)
    cfg = {"epochs": 1, "lr": 1e-3, "batch_size": 8}
    out = []
    for split in (mem, lazy):
        torch.manual_seed(0)
        model = timm.create_model("test_vit", num_classes=3, img_size=8, patch_size=4)
        hist = fit(model, split, cfg, seed=3)
        out.append((hist[0]["loss"], torch.cat([p.detach().flatten() for p in model.parameters()])))
    assert out[0][0] == out[1][0]
    assert torch.equal(out[0][1], out[1][1])


def test_a_last_batch_of_one_is_skipped_while_batch_norm_trains() -> None:
    """33 images in batches of 32 leave one: batch norm cannot train on a single image (torch raises), so that
    image sits the epoch out, and the epoch's loss averages over the 32 it saw; without batch norm it trains."""
    import torch

    from rttui.engine.data import Split
    from rttui.engine.models import create_model
    from rttui.engine.train import fit

    g = torch.Generator().manual_seed(0)
    split = Split(torch.rand(33, 3, 16, 16, generator=g), torch.randint(0, 3, (33,), generator=g))
    cnn = create_model({"name": "test_resnet"}, 3, 16)
    (rec,) = fit(cnn, split, {"epochs": 1, "lr": 1e-3, "batch_size": 32}, 0)
    assert float(rec["train_acc"] * 32).is_integer() and rec["loss"] > 0  # a fraction of the 32 it saw
    vit = create_model({"name": "test_vit"}, 3, 16)
    (rec,) = fit(vit, split, {"epochs": 1, "lr": 1e-3, "batch_size": 32}, 0)
    assert float(rec["train_acc"] * 33).is_integer()
