"""The facade for the transferability view: surrogate x target adversarial accuracy with white-box PGD on the
diagonal (`rttui.analysis.transfer`), and its text forms. Read-only; nothing here imports torch.
"""

from __future__ import annotations

from pathlib import Path

from rttui.analysis.transfer import FORMATS, MatrixCell, TransferMatrix, render_matrices, transfer_matrices
from rttui.api.stores import read_results

__all__ = ["TRANSFER_FORMATS", "MatrixCell", "TransferMatrix", "transfer", "transfer_text"]

TRANSFER_FORMATS = FORMATS


def transfer(
    db: str | Path | None = None, study: str | None = None, eps: float | None = None, all_eps: bool = False
) -> list[TransferMatrix]:
    """The transferability matrix at `eps` (default: the study's default epsilon; `all_eps`: one per epsilon
    when no eps is given). Each `TransferMatrix` has `title`, `caption`, `header()`, `body()` (display strings,
    the diagonal marked `wb`), `records()` (one per surrogate x target: adv_acc, std, n_seeds, ...) and
    `warnings` (stored `pgd_le_transfer` warnings: a transfer attack stronger than white-box PGD)."""
    recs, _runs, s, study = read_results(db, study)
    try:
        checks = s.checks()
    finally:
        s.close()
    return transfer_matrices(recs, checks, eps, study, all_eps)


def transfer_text(matrices: list[TransferMatrix], fmt: str) -> str:
    """json (one record per surrogate, target and eps), csv, md or latex."""
    return render_matrices(matrices, fmt)
