"""Study files written back: a parsed study (`Study.raw`) as TOML text, keeping an edited file's comments, key
order and layout (tomlkit), and saved only when it validates.

The read side is `spec.load_study` / `spec.parse_study`. Never import a face or the engine here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rttui.errors import StudyError
from rttui.study.spec import Study, parse_study


def study_toml(raw: dict[str, Any], base: str | None = None) -> str:
    """TOML text of a parsed study (`Study.raw`), so a face can load, edit and save a study file.

    With `base` (the file's text before the edit), only what changed is rewritten: comments, key order and
    layout of the rest survive (tomlkit).
    """
    import tomlkit

    raw = _drop_none(raw)
    if base is None:
        return tomlkit.dumps(raw)
    doc = tomlkit.parse(base)
    _merge(doc, raw)
    return tomlkit.dumps(doc)


def _merge(container: Any, new: dict[str, Any]) -> None:
    """Make a tomlkit container hold `new`, touching only the keys whose values differ."""
    for k in [k for k in container if k not in new]:
        del container[k]
    for k, v in new.items():
        old = container.get(k)
        plain = old.unwrap() if hasattr(old, "unwrap") else old
        if plain == v:
            continue
        if isinstance(v, dict) and isinstance(plain, dict) and hasattr(old, "items"):
            _merge(old, v)
        elif (
            isinstance(v, list)
            and isinstance(plain, list)
            and len(v) == len(plain)
            and all(isinstance(x, dict) for x in v)
            and all(hasattr(x, "items") for x in old)
        ):
            for o, n in zip(old, v, strict=True):
                _merge(o, n)
        else:
            container[k] = v


def _drop_none(obj: Any) -> Any:
    # TOML has no null; an unset key means "the default", which is what None means in a study.
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


def save_study(raw: dict[str, Any], path: str | Path, base: str | None = None) -> Study:
    """Validate a study and write it as TOML (keeping `base`'s comments and layout where it is given);
    nothing is written when it does not validate. The file is replaced atomically."""
    p = Path(path)
    text = study_toml(raw, base)
    study = parse_study(text, str(p), p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(p.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
    return study


def duplicate_study(text: str, new_name: str, dest: str | Path) -> Study:
    """Save a copy of a study under a new name (new runs; the original's results are untouched)."""
    study = parse_study(text)
    d = Path(dest)
    if d.exists():
        raise StudyError(f"{d}: file exists; pick another name for the copy")
    raw = dict(study.raw)
    raw["study"] = {**raw.get("study", {}), "name": new_name}
    return save_study(raw, d, base=text)
