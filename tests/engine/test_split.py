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


class _CountingU8(torch.utils.data.Dataset):
    """uint8 images as the file decoders hand them over, counting how many were decoded."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y, self.decoded = x, y, 0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        self.decoded += 1
        return self.x[i], int(self.y[i])


def test_uint8_images_become_the_same_floats_and_head_decodes_only_what_it_returns() -> None:
    g = torch.Generator().manual_seed(0)
    u8 = torch.randint(0, 256, (20, 3, 6, 6), dtype=torch.uint8, generator=g)
    y = torch.arange(20) % 4
    ds = _CountingU8(u8, y)
    lazy = Split(y=y, dataset=ds, workers=0)
    want = u8.float() / 255  # what decode_image gives for the same pixels
    xb = torch.cat([b for b, _ in lazy.batches(8)])
    assert xb.dtype == torch.float32 and torch.equal(xb, want)
    ds.decoded = 0
    x5, y5 = lazy.head(5)
    assert ds.decoded == 5 and torch.equal(x5, want[:5]) and torch.equal(y5, y[:5])
    assert torch.equal(Split(want, y).head(5)[0], x5)  # in memory: the same first images


def test_fit_reports_how_long_it_waited_for_data() -> None:
    import timm

    from rttui.engine.train import data_wait_frac, fit

    mem, lazy = _splits(16)
    for split in (mem, lazy):
        torch.manual_seed(0)
        model = timm.create_model("test_vit", num_classes=3, img_size=8, patch_size=4)
        timing: dict[str, float] = {}
        fit(model, split, {"epochs": 2, "lr": 1e-3, "batch_size": 8}, seed=0, timing=timing)
        assert timing["images"] == 32 and 0 < timing["data_seconds"] < timing["seconds"]
        assert data_wait_frac(timing) == round(timing["data_seconds"] / timing["seconds"], 4)
    assert data_wait_frac({}) is None
