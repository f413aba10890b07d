"""Discriminator-guided sampling: the guides on a toy problem with an exact density ratio, ECE
and Platt scaling on constructed cases, the validation carve never touching the test split,
and every guide composing with a tiny image run and a tiny text run (calibrate, sample, eval).
"""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from scipy.stats import ks_2samp, kstest, norm

from ganrun.calibrate import (
    CalibrateOptions,
    calibrate_run,
    expected_calibration_error,
    fit_platt,
    holdout_indices,
)
from ganrun.cli import train_from_config
from ganrun.data.images import make_fake_images
from ganrun.errors import ConfigError, GanrunError
from ganrun.guide import GUIDES, GuideOptions, drs_scores, guided_sample, solve_gamma
from tests.conftest import run_ganrun

SHIFT = 0.5  # proposal N(0, 1), target N(0.5, 1): log p_target / p_proposal = 0.5 x - 0.125


def toy_propose(count: int, seed: int):
    """Proposals x ~ N(0, 1) (count,) with their exact log density ratio to N(SHIFT, 1)."""
    x = np.random.default_rng(seed).standard_normal(count)
    return [x], SHIFT * x - SHIFT**2 / 2


# DRS is exact rejection sampling only when the acceptance is low enough that
# sigmoid(F - gamma) ~ exp(l - l_max): here E[exp(l - l_max)] ~ 0.16, so accept=0.1.
@pytest.mark.parametrize("options", [GuideOptions("drs", accept=0.1, burn_in=5000),
                                     GuideOptions("mh", steps=20),
                                     GuideOptions("is", candidates=20)])
def test_guides_move_the_toy_samples_to_the_target(options):
    n = 4000
    target = np.random.default_rng(99).normal(SHIFT, 1.0, n)
    (plain,), _ = guided_sample(toy_propose, n, GuideOptions("none"), seed=1)
    (guided,), stats = guided_sample(toy_propose, n, options, seed=1)
    assert guided.shape == (n,) and stats["samples"] == n
    before, after = ks_2samp(plain, target).statistic, ks_2samp(guided, target).statistic
    assert before > 0.15  # the proposal is visibly off (KS ~0.2 at this shift)
    assert after < 0.05, (options.name, before, after)
    assert abs(guided.mean() - SHIFT) < 0.1
    assert 0 < stats["acceptance"] <= 1 and stats["samples_per_second"] > 0
    again, _ = guided_sample(toy_propose, n, options, seed=1)
    np.testing.assert_array_equal(again[0], guided)  # the same seed, the same samples


# A toy conditional generator: x | y ~ N(0, 1) for every label y, target x | y ~ N(SHIFTS[y], 1).
# OFFSETS make the "classifier" prefer label 1 and dislike label 2 (as a real one prefers
# some digits): log ratio = SHIFTS[y] x - SHIFTS[y]^2 / 2 + OFFSETS[y].
SHIFTS, OFFSETS = np.array([0.5, -0.5, 0.5]), np.array([0.0, 1.0, -1.0])
COUNTS = np.array([3000, 1800, 1200])  # requested outputs per label


def toy_conditional_propose(count: int, seed: int, labels=None):
    """Proposals (x float (count,), labels int (count,)) and their log ratios; without labels
    the proposer draws them itself, uniformly and independently per call."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, count) if labels is None else np.asarray(labels)
    x = rng.standard_normal(count)
    return [x, labels], SHIFTS[labels] * x - SHIFTS[labels] ** 2 / 2 + OFFSETS[labels]


@pytest.mark.parametrize("options", [GuideOptions("drs", accept=0.1, burn_in=5000),
                                     GuideOptions("mh", steps=20),
                                     GuideOptions("is", candidates=20)])
def test_conditional_guides_select_within_each_label(options):
    requested = np.random.default_rng(5).permutation(np.repeat(np.arange(3), COUNTS))
    (x, labels), stats = guided_sample(toy_conditional_propose, len(requested), options,
                                       seed=2, labels=requested)
    np.testing.assert_array_equal(labels, requested)  # every output keeps its label
    assert stats["within_label"]
    (plain, plain_labels), _ = guided_sample(toy_conditional_propose, len(requested),
                                             GuideOptions("none"), seed=2, labels=requested)
    np.testing.assert_array_equal(plain_labels, requested)
    for y in range(3):
        target = norm(SHIFTS[y], 1.0).cdf
        before = kstest(plain[labels == y], target).statistic
        after = kstest(x[labels == y], target).statistic
        assert before > 0.15 and after < 0.07, (options.name, y, before, after)
    if options.name == "drs":  # per-label gamma: OFFSETS do not set a label's acceptance
        for y in range(3):
            assert 0.05 < stats["acceptance_by_label"][y] <= 0.1 * 1.1, stats
        assert set(stats["gamma_by_label"]) == {0, 1, 2} and "gamma" not in stats
    # Selecting across labels (no labels given) shifts the class proportions toward label 1.
    (_, free_labels), _ = guided_sample(toy_conditional_propose, len(requested), options,
                                        seed=2)
    assert np.bincount(free_labels, minlength=3)[1] / len(requested) > 1 / 3 + 0.1


def test_drs_sets_l_max_and_gamma_per_label():
    """A label the classifier dislikes by a constant (log p_data(y) / p_g(y) = -8) is accepted
    as often as the other and, within the label, exactly as if the constant were not there."""
    def propose(offset):
        def labelled(count, seed, labels):
            x = np.random.default_rng(seed).standard_normal(count)
            return [x, labels], SHIFT * x - SHIFT**2 / 2 + np.where(labels == 1, offset, 0.0)
        return labelled

    requested = np.repeat([0, 1], 1000)
    options = GuideOptions("drs", accept=0.1, burn_in=2000)
    (shifted, labels), stats = guided_sample(propose(-8.0), 2000, options, seed=4,
                                             labels=requested)
    (plain, _), plain_stats = guided_sample(propose(0.0), 2000, options, seed=4,
                                            labels=requested)
    np.testing.assert_array_equal(labels, requested)
    for y in (0, 1):  # near the target: a shared gamma would give label 1 ~e^-8 of label 0's
        assert 0.05 < stats["acceptance_by_label"][y] <= 0.1 * 1.1, stats
    assert stats["logit_max_by_label"][1] == pytest.approx(
        plain_stats["logit_max_by_label"][1] - 8.0)
    np.testing.assert_array_equal(shifted, plain)  # the same seed, the same accepted set
    assert stats["proposals"] < 2000 / 0.1 * 2


def test_drs_burn_in_covers_every_label_when_the_requested_labels_are_sorted():
    burn_in_labels = []

    def propose(count, seed, labels):
        if not burn_in_labels:  # the first call is the burn-in
            burn_in_labels.append(labels)
        return toy_conditional_propose(count, seed, labels)

    requested = np.repeat([0, 1, 2], [5000, 4900, 100])
    _, stats = guided_sample(propose, len(requested),
                             GuideOptions("drs", accept=0.5, burn_in=1000), seed=0,
                             labels=requested)
    # In proportion to need, and the rare label gets 100 rather than 10.
    np.testing.assert_array_equal(np.bincount(burn_in_labels[0]), [500, 490, 100])
    assert set(stats["gamma_by_label"]) == {0, 1, 2}
    assert set(stats["logit_max_by_label"]) == {0, 1, 2}


def test_drs_stops_with_the_fix_when_the_acceptance_collapses():
    """Burn-in logits N(0, 1); afterwards one proposal at 60 raises l_max, and every other is
    at -50: nothing more is accepted, and the guard fires after ~10 n / accept proposals."""
    calls = []

    def propose(count, seed, labels=None):
        logits = np.random.default_rng(seed).standard_normal(count)
        if calls:
            logits[:] = -50.0
            logits[0] = 60.0 if len(calls) == 1 else -50.0
        calls.append(count)
        return [np.arange(count)], logits

    with pytest.raises(ConfigError, match=r"accepted \d+ of \d+ proposals \(acceptance "
                                          r".*\); raise guide\.accept\."):
        guided_sample(propose, 100, GuideOptions("drs", accept=0.1, burn_in=500, batch=500))
    assert sum(calls[1:]) <= 10 * 100 / 0.1 + 500  # stopped at the first batch past the limit
    calls.clear()
    with pytest.raises(ConfigError, match=r"\(label 7: [\d.e-]+\); raise guide\.accept"):
        guided_sample(propose, 100, GuideOptions("drs", accept=0.1, burn_in=500, batch=500),
                      labels=np.full(100, 7))


def test_drs_hits_the_target_acceptance_and_trades_it_for_exactness():
    target = np.random.default_rng(99).normal(SHIFT, 1.0, 3000)
    distances = []
    for accept in (0.8, 0.5, 0.2):
        (x,), stats = guided_sample(toy_propose, 3000, GuideOptions(
            "drs", accept=accept, burn_in=20000), seed=3)
        assert stats["acceptance"] == pytest.approx(accept, abs=0.03)
        distances.append(ks_2samp(x, target).statistic)
    assert distances[0] > distances[1] > distances[2]  # lower acceptance, closer to target


def test_drs_score_and_gamma():
    logits = np.array([0.0, -1.0, -30.0])
    scores = drs_scores(logits, 0.0, 1e-6)
    # At the maximum F = -log(1 - exp(-eps)) ~ log(1 / eps); far below it F ~ l - l_max.
    assert scores[0] == pytest.approx(-np.log(1 - np.exp(-1e-6)), rel=1e-6)
    assert scores[2] == pytest.approx(-30.0, abs=1e-6)
    # One l_max per proposal (its label's): shifting a logit and its l_max together is a no-op.
    np.testing.assert_allclose(drs_scores(logits + [0.0, 5.0, -8.0], np.array([0.0, 5.0, -8.0]),
                                          1e-6), scores)
    gamma = solve_gamma(scores, 0.5)
    assert (1 / (1 + np.exp(-(scores - gamma)))).mean() == pytest.approx(0.5, abs=1e-6)


def test_bad_guide_options_name_the_fix():
    for bad in ({"name": "beam"}, {"name": "drs", "accept": 0}, {"name": "is", "candidates": 0}):
        with pytest.raises(ConfigError):
            GuideOptions(**bad)
    assert set(GUIDES) == {"none", "drs", "mh", "is"}


def test_ece_on_constructed_cases():
    # Calibrated: p = 0.3 and 30 % positives in that bin -> 0.
    assert expected_calibration_error(np.full(10, 0.3), [1, 1, 1] + [0] * 7) == pytest.approx(0)
    # Always 1.0 (last bin) with half positives -> |0.5 - 1| = 0.5.
    assert expected_calibration_error(np.ones(4), [1, 0, 1, 0]) == pytest.approx(0.5)
    # Two bins, half the mass each: bin of 0.1 has 50 % positives (gap 0.4), bin of 0.9 has
    # 100 % (gap 0.1): ECE = 0.5 * 0.4 + 0.5 * 0.1 = 0.25.
    p = np.array([0.1, 0.1, 0.9, 0.9])
    assert expected_calibration_error(p, [1, 0, 1, 1]) == pytest.approx(0.25)
    # 15 equal-width bins: 0.50 and 0.53 share bin 7 ([7/15, 8/15)); 0.54 is in bin 8.
    assert expected_calibration_error([0.50, 0.53], [1, 0]) == pytest.approx(0.015)
    assert expected_calibration_error([0.50, 0.54], [1, 0]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.54)


def test_platt_scaling_recovers_a_known_miscalibration():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < 1 / (1 + np.exp(-true_logits))).astype(float)
    a, b = fit_platt(3.0 * true_logits - 1.0, labels)  # an overconfident, shifted classifier
    assert a == pytest.approx(1 / 3, rel=0.05) and b == pytest.approx(1 / 3, abs=0.05)


def test_validation_carve_never_overlaps_the_test_split():
    data = make_fake_images(num_examples=200)  # its test split IS the first 50 training rows
    carve = holdout_indices(data.x_train, data.x_test, 0.2, seed=0)
    assert len(carve) == 40 and len(set(carve)) == 40
    test_rows = {row.tobytes() for row in data.x_test}
    assert not {data.x_train[i].tobytes() for i in carve} & test_rows
    assert (carve >= 50).all()  # the first 50 rows are the test rows
    np.testing.assert_array_equal(carve, holdout_indices(data.x_train, data.x_test, 0.2, 0))
    assert not np.array_equal(carve, holdout_indices(data.x_train, data.x_test, 0.2, 1))


def test_text_carve_skips_sentences_of_the_test_file():
    train = np.arange(60, dtype=np.int32).reshape(20, 3)
    test = train[[2, 5, 7]]  # three training sentences also occur in the test file
    carve = holdout_indices(train, test, 0.5, seed=0)
    assert len(carve) == 10 and not set(carve.tolist()) & {2, 5, 7}


# -- every guide with a tiny image run and a tiny text run ---------------------------------

FAST = ["evaluator.epochs=3", "evaluator.batch_size=32", "evaluator.feature_dim=16"]
SMALL_GUIDES = {"none": GuideOptions("none"),
                "drs": GuideOptions("drs", accept=0.5, burn_in=64, batch=64),
                "mh": GuideOptions("mh", steps=3, batch=64),
                "is": GuideOptions("is", candidates=4, batch=64)}
CALIBRATE = CalibrateOptions(holdout=0.25, steps=6, batch_size=8, fake_examples=64)


@pytest.fixture(scope="module")
def image_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONFIG_DIR, TINY

    run = tmp_path_factory.mktemp("guide") / "image"
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        # The default preset: conditional DCGAN, hinge loss, EMA generator, mixed_bfloat16.
        cfg = compose("train", overrides=[*TINY, "experiment=mnist_dcgan"])
    assert cfg.model.conditional == "auto" and cfg.train.ema_decay > 0
    train_from_config(cfg, run)
    return run


@pytest.fixture(scope="module")
def text_run(tmp_path_factory):
    from hydra import compose, initialize_config_dir

    from tests.conftest import CONFIG_DIR, TINY

    root = tmp_path_factory.mktemp("guide_text")
    rng = random.Random(0)
    words = ["a man", "the dog", "two cats", "a child"], ["rides", "eats", "sees"], \
        ["a bike .", "the cake", "a red kite ."]
    lines = [" ".join(rng.choice(part) for part in words) for _ in range(120)]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", overrides=[
            *TINY, "experiment=coco_mle", "data=text", f"data.path={root / 'corpus.txt'}",
            "data.max_len=8", "train.steps=4", "train.pretrain_steps=4",
            "model.generator.hidden_dim=16", "model.generator.embed_dim=8",
            "model.discriminator.num_filters=8", "model.discriminator.embed_dim=8",
            "model.discriminator.num_rep=2"])
    train_from_config(cfg, root / "run")
    return root / "run"


def test_guides_need_a_calibrated_classifier(image_run, tmp_path):
    from ganrun.sample import sample_to_file

    with pytest.raises(GanrunError, match="ganrun calibrate"):
        sample_to_file(image_run, 4, tmp_path / "x.npz", guide=SMALL_GUIDES["drs"])


def test_every_guide_composes_with_an_image_run(image_run, tmp_path):
    from ganrun.calibrate import load
    from ganrun.sample import sample_to_file

    record = calibrate_run(image_run, CALIBRATE)
    assert 0 <= record["accuracy"]["value"] <= 1 and 0 <= record["ece"]["value"] <= 1
    assert record["samples"]["real_held_out"] == 64  # 25 % of the 256 training rows
    assert "restored" in record["classifier"] and "EMA" in record["generator"]
    saved = json.loads((image_run / "calibrated/calibration.json").read_text())
    assert saved["split"].startswith("validation carve") and "test split is not used" in \
        saved["split"]
    load(image_run)  # the .keras file loads
    with np.load(sample_to_file(image_run, 10, tmp_path / "plain.npz", seed=2)) as content:
        plain_labels = content["labels"]  # the data's class proportions
    for name, options in SMALL_GUIDES.items():
        out = sample_to_file(image_run, 10, tmp_path / f"{name}.npz", seed=2, guide=options)
        with np.load(out) as content:
            assert content["images"].shape == (10, 28, 28)
            # Guided within each label: every output keeps the unguided sample's label.
            np.testing.assert_array_equal(content["labels"], plain_labels)
            assert content["images"].min() >= 0 and content["images"].max() <= 1


def test_a_classifier_calibrated_for_another_checkpoint_is_refused(image_run, tmp_path):
    from ganrun.sample import sample_to_file

    if not (image_run / "calibrated").is_dir():
        calibrate_run(image_run, CALIBRATE)
    path = image_run / "calibrated/calibration.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "checkpoint_path": "elsewhere/ckpt-2"}))
    try:
        with pytest.raises(GanrunError, match="ganrun calibrate"):
            sample_to_file(image_run, 4, tmp_path / "x.npz", guide=SMALL_GUIDES["is"])
    finally:
        path.write_text(json.dumps(record))


def test_ganrun_eval_scores_guided_images(image_run):
    from omegaconf import OmegaConf

    from ganrun import build
    from ganrun.evaluate.feature_net import EvaluatorOptions
    from ganrun.evaluate.guided import evaluate_guided_images

    if not (image_run / "calibrated").is_dir():
        calibrate_run(image_run, CALIBRATE)
    data = build.data(OmegaConf.load(image_run / "experiment.yaml"))
    section = evaluate_guided_images(image_run, data, 40, "latest",
                                     EvaluatorOptions(epochs=3, batch_size=32, feature_dim=16),
                                     0, SMALL_GUIDES["is"])
    metrics = json.loads((image_run / "metrics.json").read_text())
    assert metrics["eval_guided"]["fid"]["value"] == section["fid"]["value"]
    assert section["definition"]["n_fake"] == 40 and "importance" in section["definition"]["fake"]
    cost = metrics["eval_guided"]["guide"]
    assert cost["acceptance"] == 0.25 and cost["samples_per_second"] > 0
    assert set(cost["definitions"]) == {"acceptance", "samples_per_second"}


def test_every_guide_composes_with_a_text_run_and_temperature(text_run, tmp_path):
    from ganrun.sample import sample_to_file

    record = calibrate_run(text_run, CALIBRATE)
    assert "fresh" in record["classifier"]  # a pure MLE run has no trained D
    for name, options in SMALL_GUIDES.items():
        for temperature in (0.7, 1.0):
            out = sample_to_file(text_run, 6, tmp_path / f"{name}{temperature}.txt", seed=1,
                                 guide=options, temperature=temperature)
            lines = out.read_text().splitlines()
            vocabulary = {"a", "man", "the", "dog", "two", "cats", "child", "rides", "eats",
                          "sees", "bike", "cake", "red", "kite", ".", "<unk>"}
            assert len(lines) == 6 and all(set(line.split()) <= vocabulary for line in lines)


def test_ganrun_eval_draws_the_guided_curve_beside_the_unguided(text_run):
    from omegaconf import OmegaConf

    from ganrun import build
    from ganrun.evaluate.guided import evaluate_guided_text

    if not (text_run / "calibrated").is_dir():
        calibrate_run(text_run, CALIBRATE)
    data = build.data(OmegaConf.load(text_run / "experiment.yaml"))
    table = evaluate_guided_text(text_run, data, 20, "latest", 0, [0.8, 1.2], SMALL_GUIDES["is"])
    assert "is T=0.8" in table and "samples/s" in table
    metrics = json.loads((text_run / "metrics.json").read_text())
    sweep = metrics["eval_guided_temperatures"]
    assert set(sweep["guided"]["temperatures"]) == {"0.8", "1.2"}
    assert set(sweep["unguided"]["temperatures"]) == {"0.8", "1.2"}
    assert (text_run / "eval_guided_temperatures.png").stat().st_size > 1000
    assert metrics["eval_guided"]["guide"]["guide"] == "is"
    assert "nll_gen" not in metrics["eval_guided"]


def test_cli_calibrate_and_guided_sample(text_run, tmp_path):
    result = run_ganrun("calibrate", f"run={text_run}", "steps=3", "batch_size=8",
                        "fake_examples=32", "holdout=0.25")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "held-out accuracy" in result.stdout
    out = tmp_path / "mh.txt"
    result = run_ganrun("sample", f"run={text_run}", "n=5", f"out={out}", "guide=mh",
                        "guide.steps=2", "temperature=0.8")
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(out.read_text().splitlines()) == 5
    bad = run_ganrun("sample", f"run={text_run}", "n=5", "guide=beam")
    assert bad.returncode == 2 and "guide" in bad.stderr
