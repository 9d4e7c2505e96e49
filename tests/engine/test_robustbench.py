"""RobustBench's zoo as rttui models: checkpoints in RobustBench's on-disk layout made here (no download), their
logits against robustbench's own loader, the refusals, and a study that starts from one, exported with
RobustBench's published numbers beside the measured ones."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

if importlib.util.find_spec("robustbench") is None:  # the test extra's second install line brings it (README)
    pytest.importorskip("robustbench")  # skips, naming the package (importing it would run its broken __init__)

from rttui.engine import models
from rttui.engine import robustbench as rb
from rttui.errors import CheckpointError
from tests.entry import run_cli

# WideResNet-40-2 (2.2M parameters): the zoo's smallest single-file model, CIFAR-10 common corruptions.
SMALL = ("Hendrycks2020AugMix_WRN", "cifar10", "corruptions")
# WideResNet-28-4 (5.8M), CIFAR-10 Linf: the usual threat model.
LINF = ("Ding2020MMA", "cifar10", "Linf")


def _random_net(name: str, dataset: str, threat: str, seed: int = 0) -> torch.nn.Module:
    """The zoo's architecture with random weights and batch-norm statistics (so eval mode is not the identity)."""
    net = rb.build(name, dataset, threat)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net.eval()


def write_zoo_checkpoint(model_dir: Path, name: str, dataset: str, threat: str, obj: object | None = None) -> Path:
    """A file where RobustBench keeps it, as RobustBench's checkpoints are saved ({'state_dict': {'module.*'}})."""
    path = rb.checkpoint_path(name, dataset, threat, model_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    if obj is None:
        net = _random_net(name, dataset, threat)
        obj = {"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}, "epoch": 200}
    torch.save(obj, path)
    return path


def test_robustbench_checkpoint_reproduces_robustbench_logits(tmp_path: Path) -> None:
    name, dataset, threat = LINF
    path = write_zoo_checkpoint(tmp_path, *LINF)  # imports robustbench's zoo the way rttui does (no __init__)
    from robustbench.utils import load_model

    ref = load_model(name, model_dir=tmp_path, dataset=dataset, threat_model=threat)  # robustbench's own loader
    cfg = {"name": name, "kwargs": {}, "robustbench": {"dataset": dataset, "threat_model": threat}}
    ours = models.create_model({**cfg, "model_dir": str(tmp_path)}, 10, 32).eval()
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, got = ref(x), ours(x)
    assert torch.equal(got, expected)  # [0, 1] in, the model's own normalization: bit for bit
    assert expected.std() > 0  # a real function of the input, not a constant
    w = ours.weights_info
    assert w["kind"] == "robustbench" and w["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert w["published"]["clean_acc"] == pytest.approx(0.8436) and w["published"]["robust_acc"] == pytest.approx(
        0.4144
    )
    # As a source (no head) and back as a target: the body's features are the same function.
    body = models.create_model({**cfg, "model_dir": str(tmp_path)}, 0, 32).eval()
    with torch.no_grad():
        assert body(x).shape == (6, ours.model.get_classifier().in_features)


def test_robustbench_missing_file_names_the_path_and_downloads_nothing(tmp_path: Path) -> None:
    name, dataset, threat = SMALL
    with pytest.raises(CheckpointError) as err:
        rb.create(name, dataset, threat, 10, tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar10" / "corruptions" / f"{name}.pt") in msg and "never downloads" in msg
    assert "\n" not in msg
    assert list(tmp_path.iterdir()) == []  # robustbench's loader would have made the folders and downloaded


class Payload:
    """A class of this test: a pickle holding it must never be unpickled."""


@pytest.mark.parametrize(
    "make",
    [
        lambda net: net,  # a whole nn.Module saved with torch.save(model)
        lambda net: {"state_dict": net.state_dict(), "extra": Payload()},  # a dict holding a custom class
    ],
    ids=["module", "custom-class"],
)
def test_robustbench_refuses_pickles_that_are_not_state_dicts(tmp_path: Path, make) -> None:
    name, dataset, threat = SMALL
    write_zoo_checkpoint(tmp_path, *SMALL, obj=make(_random_net(*SMALL)))
    with pytest.raises(CheckpointError, match="is not a plain state dict"):
        rb.create(name, dataset, threat, 10, tmp_path)


def test_robustbench_name_not_in_zoo_suggests_close_names() -> None:
    with pytest.raises(CheckpointError, match=r"not in the installed RobustBench zoo.*did you mean 'Ding2020MMA'"):
        rb.build("Ding2020MNA", "cifar10", "Linf")


def test_robustbench_published_numbers_come_from_the_installed_leaderboard() -> None:
    carmon = rb.published("Carmon2019Unlabeled", "cifar10", "Linf")
    assert carmon is not None
    assert (carmon["clean_acc"], carmon["robust_acc"], carmon["eps"]) == (0.8969, 0.5953, "8/255")
    assert rb.published("Carmon2019Unlabeled", "cifar100", "Linf") is None


def _study(model_dir: Path, name: str = SMALL[0], extra: str = "") -> str:
    return f"""\
[study]
name = "rbzoo"
seeds = [0]

[source]
kind = "robustbench"
dataset = "cifar10"
threat_model = "corruptions"
model_dir = "{model_dir}"

[target]
dataset = "digits"
classes = [5, 6, 7, 8, 9]
image_size = 32
train_size = 20
test_size = 10

[train]
epochs = 1
batch_size = 10
lr = 1e-3

[eval]
epsilons = [0.0, 0.03]

[eval.audit]
enabled = false

[attacks.fgsm]
{extra}
[[grid]]
models = ["{name}"]
strategies = ["layer_freezing"]
"""


@pytest.mark.slow
def test_robustbench_source_runs_and_exports_published_beside_measured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    ckpt = write_zoo_checkpoint(tmp_path / "zoo", *SMALL)
    study = tmp_path / "rb.toml"
    study.write_text(_study(tmp_path / "zoo"))
    db = tmp_path / "rb.db"
    code, _, err = run_cli(["run", str(study), "--db", str(db), "-q"], monkeypatch, capsys)
    assert code == 0, err
    code, out, err = run_cli(["export", "--db", str(db), "--format", "json"], monkeypatch, capsys)
    assert code == 0, err
    records = json.loads(out)
    assert records and all(r["model"] == SMALL[0] for r in records)
    zoo = records[0]["robustbench"]
    assert zoo["published"]["clean_acc"] == pytest.approx(0.9508)  # RobustBench's number ...
    assert 0 <= records[0]["clean_acc"] <= 1  # ... beside the one measured here
    assert zoo["sha256"] == hashlib.sha256(ckpt.read_bytes()).hexdigest()
    assert (zoo["name"], zoo["dataset"], zoo["threat_model"]) == SMALL
    # the report's summary shows both, one line per RobustBench model
    code, _, err = run_cli(["report", str(study), "--db", str(db), "--out", str(tmp_path / "r")], monkeypatch, capsys)
    assert code == 0, err
    index = (tmp_path / "r" / "index.md").read_text(encoding="utf-8")
    summary = index.split("## Summary")[1].split("\n## ")[0]
    line = next(x for x in summary.splitlines() if x.startswith(f"- {SMALL[0]} "))
    assert "published clean 95.08%" in line and "measured here: clean" in line, line


def test_robustbench_study_ids_change_only_when_set(tmp_path: Path) -> None:
    from rttui.study import make_plan, parse_study

    a = make_plan(parse_study(_study(tmp_path)))
    b = make_plan(parse_study(_study(tmp_path).replace('threat_model = "corruptions"', 'threat_model = "Linf"')))
    assert {r.id for r in a.runs}.isdisjoint({r.id for r in b.runs})
    (src,) = a.sources.values()
    assert src.config["model"]["robustbench"] == {"dataset": "cifar10", "threat_model": "corruptions"}
    assert src.config["train"]["epochs"] == 0 and src.config["weights"]["model_dir"] == str(tmp_path)


def _timm_model_with_zoo_key(text: str) -> str:
    text = text.replace('kind = "robustbench"', 'kind = "timm"').replace(SMALL[0], "test_resnet")
    return text.replace("[attacks.fgsm]", '[models.test_resnet]\nthreat_model = "Linf"\n\n[attacks.fgsm]')


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda t: t.replace(SMALL[0], "Hendrycks2020AugMix_WRM"), "not in the installed RobustBench zoo"),
        (lambda t: t.replace('threat_model = "corruptions"', 'threat_model = "Linf2"'), "unknown value 'Linf2'"),
        (_timm_model_with_zoo_key, "is for RobustBench models only"),
    ],
    ids=["name", "threat", "timm-key"],
)
def test_robustbench_bad_study_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, edit, needle: str
) -> None:
    study = tmp_path / "rb.toml"
    study.write_text(edit(_study(tmp_path)))
    code, _, err = run_cli(["validate", str(study)], monkeypatch, capsys)
    assert code == 2
    assert needle in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("bad", ["missing", "module"])
def test_robustbench_bad_file_refused_before_anything_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, bad: str
) -> None:
    zoo = tmp_path / "zoo"
    if bad == "module":
        write_zoo_checkpoint(zoo, *SMALL, obj=_random_net(*SMALL))
    study = tmp_path / "rb.toml"
    study.write_text(_study(zoo))
    db = tmp_path / "rb.db"
    code, _, err = run_cli(["run", str(study), "--db", str(db), "-q"], monkeypatch, capsys)
    assert code == 2, err
    line = err.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert ("does not exist" in line) if bad == "missing" else ("not a plain state dict" in line)
    assert not db.exists() and not (tmp_path / "rb.artifacts").exists()


def test_robustbench_layer_freezing_sees_depth_groups() -> None:
    from rttui.engine.strategies import depth_groups

    name, dataset, threat = SMALL
    net = models.create_model(
        {"name": name, "kwargs": {}, "robustbench": {"dataset": dataset, "threat_model": threat}}, 5, 32
    )
    groups = depth_groups(net)
    assert len(groups) >= 4  # stem, three stages, final norm: the input side first
    assert all(not n.startswith("net.fc") for g in groups for n in g)  # the head is never a depth group
    assert net.model.get_classifier().out_features == 5
