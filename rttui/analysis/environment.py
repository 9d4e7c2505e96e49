"""How the environment a number was made in reads in tables, captions and reports (rttui.runner.provenance
collects it; the store keeps one row per env_id).

Pure and torch-free: plain dicts in, strings out. Must never collect anything itself (the runner's worker does,
where the numbers are made) nor guess a field that was not recorded: missing is "not recorded".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

NOT_RECORDED = "not recorded"


def env_fields(env: dict[str, Any] | None) -> list[tuple[str, str]]:
    """(field, value) rows a person reads to know how a number was made; one "not recorded" row for None."""
    if not env:
        return [("environment", NOT_RECORDED)]
    pk = env.get("packages") or {}
    commit = env.get("rttui_commit")
    rttui = str(env.get("rttui"))
    if commit:
        rttui += f" (git {str(commit)[:10]}{', dirty' if env.get('rttui_dirty') else ''})"
    rows = [
        ("env_id", env.get("env_id")),
        ("rttui", rttui),
        ("python", env.get("python")),
        ("torch", env.get("torch")),
        ("torchvision", pk.get("torchvision")),
        ("timm", env.get("timm")),
        ("peft", pk.get("peft")),
        ("pyautoattack", pk.get("pyautoattack")),
        ("torchattacks", pk.get("torchattacks")),
        ("cuda / cudnn", f"{env.get('cuda')} / {env.get('cudnn')}"),
        ("device", ", ".join(env.get("devices") or [str(env.get("device"))])),
        ("threads", f"{env.get('torch_threads')} (interop {env.get('torch_interop_threads')})"),
        ("deterministic", f"{env.get('deterministic')} (cudnn {env.get('cudnn_deterministic')})"),
        ("tf32", f"matmul {env.get('tf32_matmul')}, cudnn {env.get('tf32_cudnn')}"),
        ("host", env.get("host")),
        ("collected", env.get("collected_at")),
    ]
    return [(k, NOT_RECORDED if v is None else str(v)) for k, v in rows]


def env_line(env: dict[str, Any] | None) -> str:
    """One short line: `rttui 0.1.0 (git abc) · torch 2.x · timm 1.x · cpu: ...`."""
    if not env:
        return f"environment {NOT_RECORDED}"
    d = dict(env_fields(env))
    return f"rttui {d['rttui']} · python {d['python']} · torch {d['torch']} · timm {d['timm']} · {d['device']}"


def mixed_envs_warning(records: Iterable[dict[str, Any]]) -> str | None:
    """The caption line for a table whose cells come from more than one environment (None when one, or none
    recorded); cells without a record are counted as their own "not recorded" environment."""
    ids = {r.get("env_id") or NOT_RECORDED for r in records}
    if len(ids) <= 1:
        return None
    named = sorted(i for i in ids if i != NOT_RECORDED)
    extra = f" and {NOT_RECORDED}" if NOT_RECORDED in ids else ""
    return f"mixed environments: cells from {len(ids)} environments ({', '.join(named)}{extra}); see `rttui report`"
