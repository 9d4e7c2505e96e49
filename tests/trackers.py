"""Tracker tests' shared pieces: an environment that keeps MLflow and W&B off the network and out of the home
folder, and a reader of W&B's offline run files (`run-<id>.wandb`: W&B's LevelDB-style log of protobuf records,
which wandb 0.31 reads only from its Go core, so the tests read it themselves).

Plain module (no fixtures) so each test module states what it uses.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def quiet_trackers(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No network, no telemetry, nothing written outside `tmp_path`; returns the W&B folder's parent."""
    for var in ("MLFLOW_TRACKING_URI", "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_MODE", "WANDB_PROJECT"):
        monkeypatch.delenv(var, raising=False)
    wandb_dir = tmp_path / "wandb-dir"
    wandb_dir.mkdir()
    env = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "1",
        "WANDB_DIR": str(wandb_dir),
        "WANDB_SILENT": "true",
        "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config"),
        "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
        "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
        "WANDB_ERROR_REPORTING": "false",
        "WANDB_DISABLE_CODE": "true",
        "WANDB_DISABLE_GIT": "true",
        "NETRC": str(tmp_path / "no-netrc"),  # W&B's credentials file: absent
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return wandb_dir


_BLOCK = 32768


def _chunks(data: bytes) -> Iterator[bytes]:
    ident, magic, _version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1, "not a W&B run file"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and n == 0:
            break
        chunk, pos = data[pos : pos + n], pos + n
        if kind == 1:  # full
            yield chunk
        elif kind == 2:  # first
            buf = chunk
        elif kind == 3:  # middle
            buf += chunk
        elif kind == 4:  # last
            yield buf + chunk
            buf = b""


def read_wandb_run(folder: Path) -> dict[str, Any]:
    """One offline run folder: {"id", "config", "tags", "history": [{key: value}], "summary": {key: value},
    "files": [paths saved]} as W&B would upload them."""
    from wandb.proto import wandb_internal_pb2 as pb

    (path,) = folder.glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "files": [], "tags": []}
    for chunk in _chunks(path.read_bytes()):
        rec = pb.Record()
        rec.ParseFromString(chunk)
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            out["id"] = rec.run.run_id
            out["tags"] = list(rec.run.tags)
            out["config"].update({u.key: json.loads(u.value_json) for u in rec.run.config.update})
        elif kind == "config":
            out["config"].update({u.key: json.loads(u.value_json) for u in rec.config.update})
        elif kind == "history":
            out["history"].append(
                {(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item}
            )
        elif kind == "summary":
            for u in rec.summary.update:
                out["summary"][u.key or "/".join(u.nested_key)] = json.loads(u.value_json)
        elif kind == "files":
            out["files"] += [f.path for f in rec.files.files]
    return out


# Why an MLflow test skips: only where the mlflow extra is missing (the test set has it, so CI never skips these).
MLFLOW_SKIP = "mlflow is not installed: pip install -e '.[mlflow]' (the test extra includes it)"
