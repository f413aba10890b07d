"""Trust and integrity (issue 14), in-process: the `_target_` allowlist, the run-directory
lock (with a real process killed by SIGKILL), ownership, checked re-reads, bounds, quiet
stderr, and the divergence bound. The same defects through the real CLI are in
tests/test_trust_cli.py."""

from __future__ import annotations

import inspect
import logging
import os
import re
import signal
import subprocess
import sys
import types

import numpy as np
import pytest

from ganrun import rundir, targets
from ganrun.errors import ConfigError, DataError, GanrunError
from tests.conftest import CONFIG_DIR, group_options

HARMFUL = ["pathlib.Path.write_text", "builtins.open", "shutil.copyfile", "os.system",
           "keras.config.enable_unsafe_deserialization", "subprocess.run",
           "ganrun.summaries.write_text_samples",  # a ganrun function that writes files
           "ganrun.trainers.text_gan.TextGAN.write_samples",  # a trainer's method, not a builder
           "ganrun.trainers",  # a package: its submodules are listed one by one
           "ganrun.evaluate.feature_net.write_json_atomic",  # not a builder module
           "ganrun.data.corpora.TextData.save",  # a method, not a top-level builder
           "ganrun.data.images.np",  # a module the builder module imported
           "ganrun.losses._private", "${oc.env:HOME}", 7]


@pytest.mark.parametrize("target", HARMFUL)
def test_targets_outside_the_allowlist_are_refused(target):
    cfg = {"model": {"generator": {"_target_": "ganrun.models.image.mlp_generator",
                                   "units": [{"_target_": target}]}}}
    with pytest.raises(ConfigError) as error:
        targets.check_targets(cfg, "x.yaml")
    message = str(error.value)
    assert f"model.generator.units[0]._target_: {target!r} in x.yaml" in message
    assert message.count(".") >= 1 and "\n" not in message


def test_every_shipped_config_target_is_allowed(compose):
    """Every option of every config group (and the optuna sweep's hydra node) passes."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    for group in ("data", "model", "loss", "optimizer", "experiment"):
        for option in group_options(group):
            targets.check_targets(compose(f"{group}={option}", tiny=False), option)
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=["hparams_search=mnist_optuna"],
                            return_hydra_config=True)
    targets.check_targets(cfg, "train.yaml")
    # Every file, composed above or not (samplers, pruners, launchers): the nodes outside
    # `hydra:` were checked in place by the compositions above.
    for path in sorted(CONFIG_DIR.rglob("*.yaml")):
        for target in re.findall(r"^\s*_target_:\s*(\S+)", path.read_text(), re.M):
            assert targets.allowed(target, in_hydra_node=True), (path, target)
    assert targets.allowed("keras.optimizers.SGD")
    assert not targets.allowed("keras.optimizers.schedules")


def test_hydra_only_targets_are_refused_outside_the_hydra_node():
    targets.check_targets({"hydra": {"callbacks": {"c": {"_target_": "ganrun.cli.SweepComposed"}}}},
                          "x")
    with pytest.raises(ConfigError):
        targets.check_targets({"loss": {"_target_": "hydra_plugins.anything.Launcher"}}, "x")


def test_users_register_their_own_builders(monkeypatch):
    assert not targets.allowed("mypkg.models.gen")
    monkeypatch.setenv(targets.EXTRA_VARIABLE, "mypkg.models.gen, other.*")
    assert targets.allowed("mypkg.models.gen") and targets.allowed("other.sub.build")
    assert not targets.allowed("mypkg.models.other") and not targets.allowed("otherx.build")


def test_builder_modules_write_no_files():
    """What the allowlist lets a config call must not write files: the sources of every
    top-level function and class constructor of the builder modules are read."""
    import importlib

    writes = re.compile(r"\.write_(text|bytes)\(|open\([^)]*['\"][wax]|\.save\(|savez|"
                        r"to_json\(|mkdir\(|unlink\(|rmtree\(|get_file\(|\.replace\(")
    for module_name in targets.BUILDER_MODULES:
        module = importlib.import_module(module_name)  # every listed module exists
        for name, value in vars(module).items():
            target = f"{module_name}.{name}"
            if not targets.allowed(target):
                continue
            code = value.__init__ if inspect.isclass(value) else value
            try:
                source = inspect.getsource(code)
            except (TypeError, OSError):
                continue  # a class with object's __init__
            assert not writes.search(source), f"{target} writes files: add it to NOT_BUILDERS"


def _hold_lock_in_child(run_dir):
    """A real process that takes run_dir's lock and waits; returns it once it holds it."""
    code = ("import sys, time; from ganrun import rundir; rundir.lock(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(120)")
    child = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE,
                             text=True, env={**os.environ})
    assert child.stdout.readline().strip() == "locked"
    return child


def test_lock_refuses_a_second_writer_and_a_kill_9_leftover_never_blocks(tmp_path):
    child = _hold_lock_in_child(tmp_path / "run")
    try:
        assert rundir.holder(tmp_path / "run") == child.pid
        with pytest.raises(rundir.RunDirectoryInUse,
                           match=f"run is in use by process {child.pid};"):
            rundir.lock(tmp_path / "run")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert (tmp_path / "run" / ".lock").is_file()  # left behind by the killed process
    assert rundir.holder(tmp_path / "run") is None
    with rundir.locked(tmp_path / "run"):
        assert rundir.holder(tmp_path / "run") == os.getpid()
    assert rundir.holder(tmp_path / "run") is None  # released by the block
    assert (tmp_path / "run" / ".lock").read_bytes() == b""  # never rewritten


def test_ownership(tmp_path):
    assert rundir.ownership_problem(tmp_path / "new") is None
    (tmp_path / "hydra_only" / ".hydra").mkdir(parents=True)  # a launch that failed early
    (tmp_path / "hydra_only" / "train.log").write_text("x")
    assert rundir.ownership_problem(tmp_path / "hydra_only") is None
    early = tmp_path / "early"
    for name in (".lock", "experiment.yaml", "data_spec.json"):
        (early / name).parent.mkdir(parents=True, exist_ok=True)
        (early / name).write_text("x")
    assert rundir.ownership_problem(early) is None
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for name in ("experiment.yaml", "metrics.json", "generator.keras"):
        (foreign / name).write_text("someone's")
    problem = rundir.ownership_problem(foreign)
    assert problem.startswith(f"{foreign} holds files but no ganrun run (generator.keras, "
                              "metrics.json)") and problem.endswith("hydra.run.dir.")
    (foreign / "checkpoints").mkdir()
    (foreign / "checkpoints" / "checkpoint").write_text("")  # a run: its fingerprint decides
    assert rundir.ownership_problem(foreign) is None


@pytest.mark.parametrize("content, reason", [
    ("model: [\n  a: b\n", "ParserError"), ("- 1\n- 2\n", "not a mapping"),
    ("data: {}\nmodel: 3\nloss: {}\noptimizer: {}\n", "no 'model' mapping"),
    ("data: {}\nmodel: {generator: {}, discriminator: {}}\nloss:\n  x: ${nope}\noptimizer: {}\n",
     "InterpolationKeyError"),
])
def test_damaged_experiment_yaml_is_one_sentence(tmp_path, content, reason):
    (tmp_path / "experiment.yaml").write_text(content)
    with pytest.raises(GanrunError, match=re.escape(f"{tmp_path / 'experiment.yaml'} is damaged")
                       ) as error:
        rundir.load_experiment(tmp_path)
    assert reason in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("content", ['{"kind": "image", "na', "[1, 2]", '{"kind": "image"}',
                                     '{"kind": "image", "name": "x", "shape": [28, 28, 0], '
                                     '"num_classes": 0, "num_examples": 1, "source": ""}',
                                     '{"kind": "image", "name": "x", "shape": [28, 28, 1], '
                                     '"num_classes": 1000000001, "num_examples": 1, "source": ""}'])
def test_damaged_data_spec_is_one_sentence(tmp_path, content):
    from ganrun.data.spec import DataSpec

    (tmp_path / "data_spec.json").write_text(content)
    with pytest.raises(GanrunError, match=re.escape(f"{tmp_path / 'data_spec.json'} is damaged")):
        DataSpec.from_json(tmp_path / "data_spec.json")


def test_label_ids_are_bounded_and_the_first_bad_one_is_named(tmp_path):
    from ganrun.data.images import load_keras_npz

    labels = np.zeros(16, np.int64)
    labels[[5, 9]] = 10**9
    np.savez(tmp_path / "x.npz", x_train=np.zeros((16, 8, 8), np.uint8), y_train=labels)
    with pytest.raises(DataError, match=r"class id 1000000000 at index 5, outside 0\.\.15"):
        load_keras_npz(tmp_path / "x.npz", "x")
    labels[[5, 9]] = [3, 16]  # 16 images: id 16 would mean more classes than images
    np.savez(tmp_path / "x.npz", x_train=np.zeros((16, 8, 8), np.uint8), y_train=labels)
    with pytest.raises(DataError, match="class id 16 at index 9"):
        load_keras_npz(tmp_path / "x.npz", "x")


def test_npz_larger_than_memory_is_refused_from_its_header(tmp_path, monkeypatch):
    from ganrun.data import images, spec

    np.savez(tmp_path / "x.npz", x_train=np.zeros((64, 8, 8), np.uint8))
    monkeypatch.setattr(spec, "available_memory", lambda: 1000)
    with pytest.raises(DataError, match=r"arrays would take .* GiB of memory, but"):
        images.load_keras_npz(tmp_path / "x.npz", "x")


def test_text_and_folder_bounds(tmp_path, monkeypatch):
    from ganrun import summaries
    from ganrun.data import corpora, folders, spec

    (tmp_path / "t.txt").write_text("a b c\nd e f\ng h\n")
    with pytest.raises(DataError, match=r"data.max_len=1000000 must be an integer from 1 to 1000"):
        corpora.load_text(str(tmp_path / "t.txt"), max_len=10**6)
    with pytest.raises(ConfigError, match="data.vocab_size=2000000000 must be"):
        corpora.load_oracle(random_oracle_seed=0, vocab_size=2 * 10**9)
    summaries.write_png(tmp_path / "imgs" / "a.png", np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(DataError, match=r"data.size=\[100000, 8\] must be"):
        folders.load_image_folder(str(tmp_path / "imgs"), size=[100000, 8])
    monkeypatch.setattr(spec, "available_memory", lambda: 100)
    with pytest.raises(DataError, match=r"1 images of \(8, 8, 1\) would take"):
        folders.load_image_folder(str(tmp_path / "imgs"))


def test_quiet_filter_drops_tensorflow_noise_only():
    from ganrun.quiet import keep, verbose_requested

    info = b"I0000 00:00:1796094403.670080   12143 port.cc:153] oneDNN custom operations are on."
    remapper = (b"E0000 00:00:1796094546.776790   13099 meta_optimizer.cc:966] remapper failed: "
                b"INVALID_ARGUMENT: Mutation::Apply error")
    real = b"E0000 00:00:1796094546.776790   13099 op_kernel.cc:1] something real broke"
    assert not keep(info, 2) and keep(info, 0)
    assert not keep(remapper, 0) and keep(real, 2) and not keep(real, 3)
    assert keep(b"[03:07:53] step 2/4  loss/d 1.3", 2) and keep(b"Traceback (most", 2)
    assert verbose_requested(["--verbose"]) and verbose_requested(["hydra.verbose=true"])
    assert not verbose_requested(["hydra.verbose=false", "train.steps=3"])


def test_hydra_overrides_get_the_one_sentence_check():
    from ganrun.preflight import config_problem

    problem = config_problem(str(CONFIG_DIR), "train", ["hydra.run.dir=/tmp/é"])
    assert problem.startswith("an override could not be parsed") and "\n" not in problem
    problem = config_problem(str(CONFIG_DIR), "train", ["loss._target_=builtins.open"])
    assert problem.startswith("loss._target_: 'builtins.open' in the command line")
    assert config_problem(str(CONFIG_DIR), "train", ["hydra.run.dir='/tmp/é'"]) is None


def test_command_line_targets_are_checked_in_sweeps_too():
    from ganrun.preflight import target_override_problem

    problem = target_override_problem(["-m", "loss._target_=ganrun.losses.hinge,builtins.open"])
    assert problem.startswith("loss._target_: 'builtins.open' on the command line")
    problem = target_override_problem(["+hydra.callbacks.x._target_=shutil.copyfile"])
    assert problem.startswith("hydra.callbacks.x._target_: 'shutil.copyfile'")
    assert target_override_problem(["-m", "+hydra.callbacks.c._target_=ganrun.cli.SweepComposed",
                                    "loss=hinge,minimax"]) is None


def test_on_nonfinite_stays_an_alias_of_on_divergence():
    from ganrun.trainers.options import TrainOptions

    assert TrainOptions(steps=1, batch_size=1).on_nonfinite == "stop"
    old = TrainOptions(steps=1, batch_size=1, on_nonfinite="rollback")
    assert old.on_divergence == old.on_nonfinite == "rollback"
    assert TrainOptions(steps=1, batch_size=1, on_divergence="rollback").on_nonfinite == "rollback"
    with pytest.raises(ConfigError, match="train.divergence_bound=-1 must be a positive number"):
        TrainOptions(steps=1, batch_size=1, divergence_bound=-1)


def _guard(bound=1e4):
    import keras

    from ganrun.guard import DivergenceGuard
    from ganrun.trainers.options import TrainOptions

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    # The parts of the Trainer protocol (ganrun.trainers.protocol) the guard reads.
    trainer = types.SimpleNamespace(generator=model, discriminator=model, models=[model],
                                    options=TrainOptions(steps=1, batch_size=1,
                                                         divergence_bound=bound))
    checkpoints = types.SimpleNamespace(paths=lambda: ["/run/checkpoints/ckpt-100"])
    return DivergenceGuard(trainer, checkpoints)


def test_a_finite_runaway_value_counts_as_divergence():
    from ganrun.errors import TrainingDiverged

    guard = _guard()
    assert guard.check({"loss/d": 0.5, "logits/real": 9e3, "perf/x": 1e9}, 100) is None
    with pytest.raises(TrainingDiverged) as error:
        guard.check({"loss/d": 0.5, "loss/g": 2e18, "logits/real": 7.5e20}, 150)
    message = str(error.value)
    assert message.startswith("training diverged in the steps ending at 150: loss/g = 2e+18, "
                              "logits/real = 7.5e+20, beyond train.divergence_bound=10000; ")
    assert "the last good checkpoint (/run/checkpoints/ckpt-100) is kept" in message
    assert _guard(bound=0).check({"logits/real": 7.5e20}, 150) is None  # bound off


def test_d_winning_outright_is_named_once(caplog):
    guard = _guard()
    with caplog.at_level(logging.WARNING, logger="ganrun.guard"):
        for step in range(100, 3001, 100):
            guard.check({"loss/d": 1e-4, "loss/g": 0.0}, step)
    warnings = [r.getMessage() for r in caplog.records if "wins outright" in r.getMessage()]
    assert len(warnings) == 1
    assert warnings[0].startswith("loss/d has stayed below 0.001 since step 100 (1000 steps)")
    assert "seed preset" in warnings[0]
    guard = _guard()
    with caplog.at_level(logging.WARNING, logger="ganrun.guard"):
        caplog.clear()
        for step in range(100, 3001, 100):  # D wins for 900 steps at a time: no warning
            guard.check({"loss/d": 1e-4 if step % 1000 else 0.5}, step)
    assert not [r for r in caplog.records if "wins outright" in r.getMessage()]


class _FakeGenerator:
    """A 'generator' whose images are its latents, reshaped: (k, 4) -> (k, 2, 2, 1)."""

    inputs = [types.SimpleNamespace(shape=(None, 4))]

    def __call__(self, z, training=False):
        return np.asarray(z).reshape(-1, 2, 2, 1)


def test_streamed_samples_are_the_whole_draw_in_chunks(tmp_path, monkeypatch):
    import tensorflow as tf

    from ganrun import sample_output
    from ganrun.sampling import fixed_latents

    pixels = lambda z: ((np.asarray(z) + 1) / 2).clip(0, 1).reshape(-1, 2, 2, 1)  # noqa: E731
    chunks = list(sample_output.image_chunks(_FakeGenerator(), (-1, 1), 10, 3, 4,
                                             lambda a, b: None))
    assert [len(c) for c in chunks] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate(chunks), pixels(fixed_latents(10, 4, 3)))
    monkeypatch.setattr(sample_output, "LATENT_BLOCK", 4)  # blocks of 4 rows: 4, 4, 2
    chunks = list(sample_output.image_chunks(_FakeGenerator(), (-1, 1), 10, 3, 3,
                                             lambda a, b: None))
    assert [len(c) for c in chunks] == [3, 1, 3, 1, 2]  # no chunk crosses a block
    blocks = [tf.random.stateless_normal((rows, 4), seed=[3, 0x5EED + b])
              for b, rows in enumerate((4, 4, 2))]
    np.testing.assert_array_equal(np.concatenate(chunks), pixels(np.concatenate(blocks)))
    out = tmp_path / "s.npz"
    sample_output.write_npz(out, 10, (2, 2, 1), lambda: iter(chunks),
                            lambda a, b: np.arange(a, b, dtype=np.int32) % 3)
    with np.load(out) as saved:
        np.testing.assert_array_equal(saved["images"], np.concatenate(chunks)[..., 0])
        np.testing.assert_array_equal(saved["labels"], np.arange(10) % 3)


def test_chunked_labels_are_the_whole_label_array():
    from ganrun.sample import class_labels, labels_of_rows

    generator = types.SimpleNamespace(
        inputs=[1, 2], get_layer=lambda name: types.SimpleNamespace(input_dim=3))
    for label, frequencies in ((None, ()), (None, (0.5, 0.3, 0.2)), (2, ())):
        whole = class_labels(generator, 1001, label, frequencies)
        rows = labels_of_rows(generator, label, 1001, frequencies)
        np.testing.assert_array_equal(np.concatenate([rows(s, min(s + 64, 1001))
                                                      for s in range(0, 1001, 64)]), whole)
