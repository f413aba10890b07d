"""Image evaluation end to end: the cached feature network, `ganrun eval`, periodic evaluation
during training and the best-FID checkpoint. (The statistics: tests/test_image_metrics.py.)"""

import dataclasses
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from ganrun.data.images import ImageData, make_fake_images
from ganrun.errors import DataError
from ganrun.evaluate import feature_net, scores
from ganrun.evaluate.feature_net import EvaluatorOptions, load_or_train
from tests.conftest import TINY, run_ganrun

# Small enough to train in a second on the fake data, and n (64 test images) > feature_dim.
FAST = EvaluatorOptions(epochs=3, batch_size=32, feature_dim=16)
FAST_OVERRIDES = ["evaluator.epochs=3", "evaluator.batch_size=32", "evaluator.feature_dim=16"]
DOCUMENTED_DEFINITION = {"feature_network", "feature_network_path",
                         "feature_network_test_accuracy", "layer", "n_real", "n_fake",
                         "real_split", "fake", "floor", "data", "data_hash"}


@pytest.fixture
def count_training(monkeypatch):
    """Counts calls of the feature network's training function."""
    calls = []
    real_train = feature_net._train

    def counting(*args, **kwargs):
        calls.append(args[0].spec.source)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(feature_net, "_train", counting)
    return calls


def test_cache_is_reused_and_invalidated_when_the_data_changes(tmp_path, count_training):
    options = dataclasses.replace(FAST, cache_dir=str(tmp_path))
    first = load_or_train(make_fake_images(seed=0), options)
    again = load_or_train(make_fake_images(seed=0), options)
    assert len(count_training) == 1  # the second call loaded the cached network
    assert again.info == first.info
    images = make_fake_images(seed=0).x_test
    np.testing.assert_allclose(again.embed(images)[0], first.embed(images)[0], rtol=1e-5)
    other = load_or_train(make_fake_images(seed=1), options)
    assert len(count_training) == 2  # different data, different network
    assert other.info["data_hash"] != first.info["data_hash"]
    for key in ("test_accuracy", "seed", "data_hash", "layer", "train_seconds", "path"):
        assert key in first.info, key
    assert sorted(p.name for p in (tmp_path / first.info["path"]).parent.iterdir()) == [
        "classifier.json", "classifier.keras"]


def test_the_cache_directory_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(feature_net.CACHE_ENV, str(tmp_path / "env"))
    assert EvaluatorOptions().root() == tmp_path / "env"
    assert EvaluatorOptions(cache_dir=str(tmp_path / "cfg")).root() == tmp_path / "cfg"


def test_training_is_deterministic_given_the_seed(tmp_path):
    data = make_fake_images()
    nets = [load_or_train(data, dataclasses.replace(FAST, cache_dir=str(tmp_path / name)))
            for name in ("a", "b")]
    for a, b in zip(nets[0].model.get_weights(), nets[1].model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_unlabelled_data_names_the_unavailable_metrics(tmp_path):
    data = make_fake_images()
    unlabelled = ImageData(data.x_train, None, data.x_test, None,
                           dataclasses.replace(data.spec, num_classes=0))
    with pytest.raises(DataError, match="FID, KID, classifier score, class coverage and "
                                        "precision/recall are all unavailable"):
        load_or_train(unlabelled, dataclasses.replace(FAST, cache_dir=str(tmp_path)))


def test_the_test_split_scored_against_itself_is_perfect(tmp_path):
    data = make_fake_images()
    scorer = scores.Scorer(load_or_train(data, dataclasses.replace(FAST, cache_dir=str(tmp_path))),
                           data, n=1000)
    section = scorer.score(data.x_test.astype(np.float32) / 255.0, "the test images")
    assert scorer.n_real == len(data.x_test) == section["definition"]["n_fake"]
    assert abs(section["fid"]["value"]) < 1e-6
    assert section["precision"]["value"] == section["recall"]["value"] == 1.0
    assert set(section["definition"]) == DOCUMENTED_DEFINITION
    # The floor (training images vs the test images) was cached beside the network.
    assert (tmp_path / scorer.net.info["path"]).parent.joinpath("floors_n64.json").is_file()


# --------------------------------------------------------------------------- through the CLI


def _tensorboard_scalars(run_dir, tag):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    accumulator = event_accumulator.EventAccumulator(
        str(run_dir / "tb"), size_guidance={event_accumulator.TENSORS: 0})
    accumulator.Reload()
    return {event.step: float(tf.make_ndarray(event.tensor_proto))
            for event in accumulator.Tensors(tag)}


@pytest.fixture(scope="module")
def evaluated_run(tmp_path_factory):
    """A tiny run on fake data evaluated every 2 steps (32 samples) and at the end (48)."""
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    result = run_ganrun("train", *TINY, "train.steps=6", "train.eval_every=2", "train.eval_n=32",
                        "train.eval_final_n=48", *FAST_OVERRIDES, f"hydra.run.dir={run_dir}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_training_evaluates_periodically_and_keeps_the_best_checkpoint(evaluated_run):
    periodic = _tensorboard_scalars(evaluated_run, "eval_periodic/fid")
    assert sorted(periodic) == [2, 4, 6]
    assert _tensorboard_scalars(evaluated_run, "eval_periodic/fid_floor")
    best = json.loads((evaluated_run / "checkpoints/best/best.json").read_text())
    best_step = min(periodic, key=periodic.get)
    assert best["step"] == best_step and best["n_fake"] == 32
    assert best["fid"] == pytest.approx(periodic[best_step], rel=1e-5)
    assert best["checkpoint"] == f"ckpt-{best_step}"
    assert (evaluated_run / "checkpoints/best/checkpoint").is_file()


def test_training_ends_with_the_full_count_evaluation(evaluated_run):
    metrics = json.loads((evaluated_run / "metrics.json").read_text())
    section = metrics["eval"]
    assert section["step"] == 6 and section["checkpoint"] == "latest"
    assert section["definition"]["n_fake"] == 48 and section["definition"]["n_real"] == 48
    assert metrics["loss/g"]["value"] is not None  # the training entries are still there
    assert metrics["eval/fid"]["value"] == section["fid"]["value"]
    assert "48 samples" in metrics["eval/fid"]["definition"]
    assert metrics["best"]["step"] in (2, 4, 6)
    assert 6 in _tensorboard_scalars(evaluated_run, "eval/fid")


def test_ganrun_eval_writes_the_documented_json(evaluated_run):
    result = run_ganrun("eval", f"run={evaluated_run}", "n=40", "checkpoint=best",
                        *FAST_OVERRIDES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fid" in result.stdout and "floor" in result.stdout
    metrics = json.loads((evaluated_run / "metrics.json").read_text())
    section = metrics["eval_best"]
    assert section["checkpoint"] == "best" and section["step"] == metrics["best"]["step"]
    assert set(section["definition"]) == DOCUMENTED_DEFINITION
    assert section["definition"]["n_fake"] == 40 and section["definition"]["real_split"]
    for name in ("fid", "kid", "classifier_score", "class_coverage", "precision", "recall"):
        entry = section[name]
        assert np.isfinite(entry["value"]) and np.isfinite(entry["floor"]), name
        assert entry["definition"], name
    assert np.isfinite(section["kid"]["std_error"])
    assert metrics["eval"]["definition"]["n_fake"] == 48  # the latest's section is kept


def test_ganrun_sample_takes_the_best_checkpoint(evaluated_run, tmp_path):
    out = tmp_path / "best.npz"
    result = run_ganrun("sample", f"run={evaluated_run}", "n=3", f"out={out}", "checkpoint=best")
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.load(out)["images"].shape == (3, 28, 28)


def test_ganrun_eval_refuses_other_data(evaluated_run, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(evaluated_run, copy)
    config = OmegaConf.load(copy / "experiment.yaml")
    config.data.seed = 1  # other fake images of the same size and count
    OmegaConf.save(config, copy / "experiment.yaml")
    result = run_ganrun("eval", f"run={copy}", "n=40", *FAST_OVERRIDES)
    assert result.returncode == 2
    assert "is not the data this run was trained on" in result.stderr


# --------------------------------------------------------------------------- best checkpoint


class _StubScorer:
    """Returns the given FIDs in turn (other metrics constant), like scores.Scorer.score."""

    def __init__(self, fids, n):
        self.fids, self.n, self.n_real = list(fids), n, n

    def score(self, images, fake_source):
        section = {name: {"value": 0.5, "floor": 0.5} for name in scores.DEFINITIONS}
        section["fid"]["value"] = self.fids.pop(0)
        section["kid"]["std_error"] = 0.1
        return {"definition": {"n_fake": self.n}, **section}


def _evaluation(fids, n, trainer):
    from ganrun.evaluate.during_training import TrainingEvaluation

    evaluation = TrainingEvaluation(None, None, every=1, n=n, final_n=0, last_step=99)
    evaluation._scorer = _StubScorer(fids, n)
    evaluation._images = lambda trainer, count: None  # the stub scorer ignores the images
    return evaluation


def test_best_checkpoint_keeps_the_lowest_fid_across_resumes(tmp_path):
    import keras
    import tensorflow as tf

    from ganrun.evaluate.best import BEST_DIR, read_best

    generator = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    # The members the evaluation uses (ganrun.trainers.protocol; no EMA: the generator itself).
    trainer = type("Trainer", (), {"sampling_generator": generator,
                                   "pixel_range": (-1.0, 1.0)})()
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    run = _evaluation([5.0, 3.0, 4.0], n=100, trainer=trainer)
    for step in (1, 2, 3):
        generator.layers[0].kernel.assign(tf.fill((2, 3), float(step)))
        run.periodic(trainer, step, writer, tmp_path)
    best = read_best(tmp_path / BEST_DIR)
    assert (best["step"], best["fid"], best["checkpoint"]) == (2, 3.0, "ckpt-2")
    restored = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    tf.train.Checkpoint(generator=restored).restore(
        str(tmp_path / BEST_DIR / "ckpt-2")).assert_existing_objects_matched()
    np.testing.assert_array_equal(restored.layers[0].kernel.numpy(), np.full((2, 3), 2.0))
    # A resumed run competes with the saved best: a worse FID leaves it alone ...
    _evaluation([3.5], n=100, trainer=trainer).periodic(trainer, 4, writer, tmp_path)
    assert read_best(tmp_path / BEST_DIR)["step"] == 2
    # ... but FIDs from another sample count are not comparable, so the first one replaces it.
    _evaluation([9.0], n=50, trainer=trainer).periodic(trainer, 5, writer, tmp_path)
    assert read_best(tmp_path / BEST_DIR)["step"] == 5
