"""The tiny offline study that tests and scripts run, written once.

Plain module (no pytest import) so `scripts/screenshots.py` can import it too. Each caller names only what its
study changes; everything else is the one tiny study, so a fix to it reaches every copy.
"""

from __future__ import annotations

from typing import Any

import tomlkit
from tomlkit.container import Container
from tomlkit.items import Table

# Two strategies on one tiny model, FGSM and PGD, one seed: seconds on a CPU. Kept as text (not a dict) so
# tiny_study() with no overrides returns it byte for byte, which the tests that edit it with str.replace rely on.
TINY = """\
[study]
name = "tiny"
seeds = [0]

[source]
dataset = "digits"
classes = [0, 1, 2, 3, 4]
epochs = 2
lr = 2e-3
train_size = 300

[target]
dataset = "digits"
classes = [5, 6, 7, 8, 9]
image_size = 16
test_size = 60
train_size = 200

[train]
lr = 2e-3
epochs = 1

[eval]
epsilons = [0.0, 0.03, 0.1]

[attacks.fgsm]
[attacks.pgd]
steps = 3

[[grid]]
models = ["test_resnet"]
strategies = ["full", "layer_freezing"]
"""


def tiny_study(**sections: Any) -> str:
    """The tiny study's TOML with `sections` merged in: one keyword per top-level table (`study`, `train`,
    `eval`, `attacks`, `grid`, `techniques`, ...).

    A dict merges key by key into the table of that name (recursively, so `attacks={"pgd": {"steps": 2}}` keeps
    FGSM), None removes the key, and anything else (a list such as `grid`, a scalar) replaces it. A key the
    table lacks goes right after the key named before it in the same call, so the file reads in the order the
    caller wrote (`study={"name": ..., "description": ...}` puts the description under the name).
    """
    doc = tomlkit.parse(TINY)
    _merge(doc, sections)
    return tomlkit.dumps(doc)


def _merge(table: Container | Table, changes: dict[str, Any]) -> None:
    after: str | None = None
    for key, value in changes.items():
        if value is None:
            del table[key]  # a key that is not there is a typo in the caller: fail loudly
        elif isinstance(value, dict) and isinstance(table.get(key), Container | Table):
            _merge(table[key], value)
        elif key in table:
            table[key] = value
        else:
            _insert_after(table, after, key, value)
        after = key


def _insert_after(table: Container | Table, after: str | None, key: str, value: Any) -> None:
    """Add `key` after `after` (at the end without one): move the keys behind it out and back, with their
    formatting, since tomlkit only appends."""
    keys = list(table)
    behind = keys[keys.index(after) + 1 :] if after in keys else []
    moved = [(k, table.item(k)) for k in behind]
    for k in behind:
        table.remove(k)
    table[key] = value
    for k, item in moved:
        table.append(k, item)


# The transfer attack's study: two strategies, two seeds, FGSM, PGD and four transfer attacks (from the source,
# from the full sibling, from the other seed's run, and from the run itself); shared by the runner, CLI and TUI
# tests of the transfer view.
SOURCE = {"name": "transfer", "surrogate": "source", "steps": 3}
SIB_FULL = {"name": "transfer", "surrogate": "sibling", "sibling": {"strategy": "full"}, "steps": 3}
SIB_OTHER = {"name": "transfer", "surrogate": "sibling", "sibling": {"seed": "other"}, "steps": 3}
SELF = {"name": "transfer", "surrogate": "sibling", "sibling": {}, "steps": 3}
TRANSFER_STUDY = tiny_study(
    study={"name": "tr", "seeds": [0, 1]},
    source={"epochs": 1, "train_size": 150},
    target={"test_size": 40, "train_size": 100},
    grid=[
        {
            "models": ["test_resnet"],
            "strategies": ["full", "layer_freezing"],
            "attacks": ["fgsm", "pgd", SOURCE, SIB_FULL, SIB_OTHER, SELF],
        }
    ],
)
