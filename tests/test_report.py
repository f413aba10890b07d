"""`ganrun report` on hand-made run directories, and the HParams helpers (no training)."""

import csv
import json

import pytest

from ganrun import hparams, report
from ganrun.errors import ConfigError


def _run(directory, overrides, metrics=None, objective=("eval/fid", "minimize"), log=""):
    (directory / ".hydra").mkdir(parents=True)
    (directory / ".hydra" / "overrides.yaml").write_text(
        "".join(f"- {item}\n" for item in overrides))
    (directory / "experiment.yaml").write_text(
        f"objective:\n  metric: {objective[0]}\n  direction: {objective[1]}\n")
    if metrics is not None:
        (directory / "metrics.json").write_text(json.dumps(metrics))
    if log:
        (directory / "train.log").write_text(log)


def _metrics(fid, loss_g):
    return {"step": 100, "loss/g": {"value": loss_g, "definition": "generator loss"},
            "eval": {"definition": {"n_fake": 10}, "step": 100,
                     "fid": {"value": fid, "floor": 0.1, "definition": "FID on the test split"}}}


@pytest.fixture
def sweep(tmp_path):
    _run(tmp_path / "0", ["loss=hinge", "optimizer.generator.learning_rate=1e-4", "data=fake"],
         _metrics(30.0, 1.0))
    _run(tmp_path / "1", ["loss=hinge", "optimizer.generator.learning_rate=2e-4", "data=fake"],
         _metrics(20.0, 2.0))
    _run(tmp_path / "10", ["loss=wasserstein", "optimizer.generator.learning_rate=1e-3",
                           "data=fake"], _metrics(25.0, 0.5))
    _run(tmp_path / "2", ["loss=wasserstein", "optimizer.generator.learning_rate=1e-2",
                          "data=fake"], None,
         log="[x][ganrun][ERROR] ganrun: error: training diverged in the steps ending at 7\n")
    return tmp_path


def test_report_sorts_by_the_runs_objective_and_marks_the_best(sweep, capsys):
    assert report.main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "Objective: eval/fid (minimize): FID on the test split." in out
    assert "Common overrides: data=fake." in out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| best | run | loss | optimizer.generator.learning_rate | "
                               "eval/fid | step | loss/g |")
    assert [line.split(" | ")[1] for line in lines[1:]] == ["1", "10", "0", "2"]
    assert lines[1].startswith("| ★ | 1 | hinge | 2e-4 | 20 | 100 | 2 |")
    assert "- 2: ganrun: error: training diverged in the steps ending at 7" in out
    with (sweep / "report.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["best"] for row in rows] == ["★", "", "", ""]
    assert float(rows[0]["eval/fid"]) == 20.0 and rows[3]["eval/fid"] == ""
    assert (sweep / "report.png").stat().st_size > 1000
    assert (sweep / "report.md").read_text() == out.split("Written ")[0]


def test_objective_and_direction_can_be_chosen(sweep, capsys):
    assert report.main([str(sweep), "--objective", "loss/g", "--direction", "maximize"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert [line.split(" | ")[1] for line in lines[1:]] == ["1", "0", "10", "2"]


def test_runs_without_overrides_are_compared_by_their_config(tmp_path, capsys):
    for name, lr in (("a", 1e-4), ("b", 3e-4)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "experiment.yaml").write_text(
            f"optimizer:\n  generator:\n    learning_rate: {lr}\nseed: 0\n")
        (tmp_path / name / "metrics.json").write_text(json.dumps(_metrics(lr * 1e5, 1.0)))
    assert report.main([str(tmp_path), "--objective", "eval/fid"]) == 0
    out = capsys.readouterr().out
    assert "| ★ | a | 0.0001 | 10 |" in out and "Common overrides: seed=0." in out


def test_no_runs_is_a_one_line_error(tmp_path, capsys):
    assert report.main([str(tmp_path)]) == 2
    assert "no run directories" in capsys.readouterr().err


def test_selected_hparams_are_choices_and_overridden_values():
    config = {"optimizer": {"generator": {"learning_rate": 1e-4, "beta_1": 0.5}},
              "train": {"steps": 5, "augment": ["cutout"]}, "loss": {"_target_": "x"}}
    selected = hparams.selected_hparams(
        config, ["loss=hinge", "optimizer.generator=adam_fast", "train.augment=[cutout]",
                 "+train.steps=5", "hydra.sweep.dir=/x"],
        {"loss": "hinge", "model": "dcgan", "hydra/launcher": "joblib", "evaluator": None})
    assert selected == {"loss": "hinge", "model": "dcgan",
                        "optimizer.generator.learning_rate": 1e-4,
                        "optimizer.generator.beta_1": 0.5,
                        "train.augment": '["cutout"]', "train.steps": 5}


def test_objective_reads_nested_metrics_and_names_the_choices(tmp_path):
    metrics = _metrics(12.5, 1.0)
    assert hparams.objective(tmp_path, metrics, "eval/fid") == 12.5
    assert hparams.objective(tmp_path, metrics, "loss/g") == 1.0
    with pytest.raises(ConfigError, match="objective.metric=eval/kid .*eval/fid, eval/step"):
        hparams.objective(tmp_path, metrics, "eval/kid")
