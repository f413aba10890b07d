"""The wall of bad inputs: each case is a real `ganrun` command that must exit 2 with one
sentence naming the problem and the fix, print no traceback, and leave what is already on disk
(an earlier run directory, the input files) exactly as it was.

The command-line wall starts one process per case, so it is marked slow (it runs in
`make test` and CI); the loader-level messages below it are checked in-process in the fast
suite. tests/test_cli.py has a first, smaller set of these cases.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganrun.data.images import load_keras_npz
from ganrun.data.text import MAX_LINE_CHARS, read_lines
from ganrun.errors import DataError
from ganrun.preflight import config_problem, output_dir_problem
from tests.conftest import CONFIG_DIR, TINY, run_ganrun

HAS_TEXT_CONFIG = (CONFIG_DIR / "data" / "text.yaml").is_file()
HAS_EVAL = (CONFIG_DIR / "eval.yaml").is_file()


def _snapshot(*roots: Path) -> dict[Path, str]:
    """SHA-256 of every file under `roots`, except Hydra's record of the latest invocation
    (.hydra/) and the appended log, which every invocation rewrites."""
    files = [p for root in roots
             for p in ([root] if root.is_file() else sorted(root.rglob("*")))]
    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files
            if p.is_file() and ".hydra" not in p.parts and p.name != "train.log"}


def _damaged(before: dict[Path, str]) -> list[str]:
    """Files of `before` that are gone or changed (new files are allowed)."""
    return [str(p) for p, digest in before.items()
            if not p.is_file() or hashlib.sha256(p.read_bytes()).hexdigest() != digest]


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def _make_inputs(root: Path) -> dict[str, Path]:
    """Bad data files, each a different mistake."""
    images = np.zeros((20, 28, 28), np.uint8)
    good = _npz(root / "good.npz", x_train=images, y_train=np.arange(20) % 10)
    truncated = root / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    corrupt = root / "corrupt.npz"
    corrupt.write_bytes(b"PK\x03\x04" + os.urandom(2000))
    (root / "a_directory.npz").mkdir()
    text = root / "text"
    text.mkdir()
    (text / "empty.txt").write_text("\n  \n")
    (text / "latin1.txt").write_bytes("a caf\xe9 on the corner\n".encode("latin-1"))
    (text / "long.txt").write_text("a short line\n" + "word " * (MAX_LINE_CHARS // 4) + "\n")
    return {
        "truncated": truncated, "corrupt": corrupt, "directory": root / "a_directory.npz",
        "wrong_keys": _npz(root / "keys.npz", images=images),
        "flat": _npz(root / "flat.npz", x_train=images.reshape(20, -1)),
        "float": _npz(root / "float.npz", x_train=images.astype(np.float32)),
        "labels": _npz(root / "labels.npz", x_train=images, y_train=np.arange(7)),
        "empty": text / "empty.txt", "latin1": text / "latin1.txt", "long": text / "long.txt",
        "a_file": good,
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A finished tiny run (ganrun train through the CLI) and the bad input files."""
    root = tmp_path_factory.mktemp("bad_inputs")
    run = root / "run"
    result = run_ganrun("train", *TINY, f"hydra.run.dir={run}")
    assert result.returncode == 0, result.stderr[-3000:]
    return run, _make_inputs(root)


def _limit_file_size():  # runs in the child: files may not grow past 256 kB ("disk full")
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # so write() fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (256_000, resource.RLIM_INFINITY))


def _mnist(path) -> list[str]:
    return ["data=mnist", f"data.path={path}", "data.sha256=null"]


def _text(name) -> list[str]:
    return ["data=text", f"data.path={{{name}}}"]


# (command, overrides with {placeholders}, the message that must appear on stderr)
CASES = {
    "unknown group option": ("train", ["model=nope"], "model=nope is not an option of model"),
    "unknown group": ("train", ["modle=dcgan"], "unknown config key modle (did you mean model?)"),
    "misspelt train key": ("train", ["train.stepz=5"], "key train.stepz (did you mean train.st"),
    "misspelt key in a group": ("train", ["optimizer.generator.learnig_rate=1e-4"],
                                "did you mean optimizer.generator.learning_rate?"),
    "several values without -m": ("train", ["loss=hinge,minimax"], "has several values; add -m"),
    "unparsable override": ("train", ["train.steps=[1"], "an override could not be parsed"),
    "wrong type (text for a count)": ("train", ["train.steps=abc"],
                                      "train.steps='abc' must be a positive integer"),
    "wrong type (fraction for a count)": ("train", ["train.batch_size=1.5"],
                                          "train.batch_size=1.5 must be a positive integer"),
    "wrong type (text for a rate)": ("train", ["optimizer.generator.learning_rate=fast"],
                                     "learning_rate='fast' must be a positive number"),
    "negative steps": ("train", ["train.steps=-1"], "train.steps=-1 must be a positive"),
    "zero batch": ("train", ["train.batch_size=0"], "train.batch_size=0 must be a positive"),
    "zero steps per call": ("train", ["train.steps_per_call=0"], "train.steps_per_call=0"),
    "negative checkpoint interval": ("train", ["train.checkpoint_every=-5"],
                                     "train.checkpoint_every=-5"),
    "zero latent size": ("train", ["model.latent_dim=0"], "model.latent_dim=0 must be a"),
    "learning rate 0": ("train", ["optimizer.generator.learning_rate=0"],
                        "learning_rate=0 must be a positive number"),
    "negative learning rate": ("train", ["optimizer.discriminator.learning_rate=-1e-4"],
                               "learning_rate=-0.0001 must be a positive number"),
    "unknown NaN policy": ("train", ["train.on_nonfinite=retry"],
                           "train.on_nonfinite='retry' must be stop or rollback"),
    "missing data file": ("train", _mnist("/no/such/mnist.npz"), "does not exist"),
    "data path is a directory": ("train", _mnist("{directory}"), "is a directory, not a file"),
    "truncated npz": ("train", _mnist("{truncated}"), "is not a readable .npz file"),
    "corrupt npz": ("train", _mnist("{corrupt}"), "is not a readable .npz file"),
    "npz without x_train": ("train", _mnist("{wrong_keys}"), "has no 'x_train' array"),
    "npz with flat images": ("train", _mnist("{flat}"), "expected uint8 (N, H, W)"),
    "npz with float pixels": ("train", _mnist("{float}"), "convert the images to 8-bit"),
    "npz with too few labels": ("train", _mnist("{labels}"), "one integer per image"),
    "empty text file": ("train", _text("empty"), "has no non-blank lines"),
    "non-UTF-8 text": ("train", _text("latin1"), "is not valid UTF-8 at line 1"),
    "over-long text line": ("train", _text("long"), f"more than the {MAX_LINE_CHARS}"),
    "unwritable output directory": ("train", ["hydra.run.dir={a_file}/run"],
                                    "is a file; choose another hydra.run.dir"),
    "another experiment's run directory": ("train", ["model=mlp", "hydra.run.dir={run}"],
                                           "holds checkpoints of a different experiment"),
    "every checkpoint damaged": ("train", ["train.steps=6", "hydra.run.dir={run}"],
                                 "can be restored into this experiment"),
    "disk full while checkpointing": ("train", ["train.steps=6", "hydra.run.dir={run}"],
                                      "could not write checkpoint ckpt-6"),
    "sample without a checkpoint": ("sample", ["run={run}", "n=2"], "has no checkpoint yet"),
    "sample from a non-run directory": ("sample", ["run={directory}", "n=2"],
                                        "is not a ganrun run directory"),
    "sample zero images": ("sample", ["run={run}", "n=0"], "n=0 must be a positive number"),
    "sample to an unknown format": ("sample", ["run={run}", "out={run}/x.jpg"],
                                    "must end in .npz"),
    "eval without a checkpoint": ("eval", ["run={run}", "n=10"], "no checkpoint"),
}
NEEDS_NO_CHECKPOINT = {"sample without a checkpoint", "eval without a checkpoint"}


def _prepare(case: str, run: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run, damaged the way `case` needs."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    if case in NEEDS_NO_CHECKPOINT:
        shutil.rmtree(copy / "checkpoints")
    if case == "every checkpoint damaged":
        for data in (copy / "checkpoints").glob("ckpt-*.data-*"):
            data.write_bytes(b"\0" * 64)
    return copy


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_sentence_and_damages_nothing(world, tmp_path, case):
    command, overrides, message = CASES[case]
    if "data=text" in overrides and not HAS_TEXT_CONFIG:
        pytest.skip("no data=text config yet (the loader is checked below)")
    if command == "eval" and not HAS_EVAL:
        pytest.skip("no `ganrun eval` yet")
    run, inputs = world
    copy = _prepare(case, run, tmp_path)
    places = {**inputs, "run": copy}
    args = [arg.format(**places) for arg in overrides]
    if command == "train":
        has_dir = any(a.startswith("hydra.run.dir=") for a in args)
        args = [*TINY, *args, *([] if has_dir else [f"hydra.run.dir={copy}"])]
    before = _snapshot(copy, *inputs.values())
    result = _run(command, args, limit_size=case == "disk full while checkpointing")
    stderr = result.stderr
    assert result.returncode == 2, stderr[-3000:]
    assert message in stderr, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if "ganrun: error:" in line]
    assert len(errors) == 1 and message in errors[0], stderr[-3000:]  # one line says it all
    assert not _damaged(before)
    if case == "disk full while checkpointing":  # and its partial files are gone
        assert not list((copy / "checkpoints").glob("ckpt-6*")), "partial checkpoint left"


def _run(command: str, args: list[str], limit_size: bool):
    if not limit_size:
        return run_ganrun(command, *args)
    script = Path(sys.executable).with_name("ganrun")
    return subprocess.run([str(script), command, *args], capture_output=True, text=True,
                          timeout=300, preexec_fn=_limit_file_size,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})


def test_the_wall_has_at_least_20_cases():
    assert len(CASES) >= 20


# --- the same messages from the loaders, in-process (fast) ----------------------------------


@pytest.fixture
def inputs(tmp_path):
    return _make_inputs(tmp_path)


@pytest.mark.parametrize("name, message", [
    ("truncated", "is not a readable .npz file"), ("corrupt", "is not a readable .npz file"),
    ("wrong_keys", "has no 'x_train' array"), ("flat", "expected uint8 (N, H, W)"),
    ("float", "convert the images to 8-bit"), ("labels", "one integer per image"),
])
def test_npz_loader_names_the_problem(inputs, name, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_keras_npz(inputs[name], name="x")


@pytest.mark.parametrize("name, message", [
    ("empty", "has no non-blank lines"), ("latin1", "is not valid UTF-8 at line 1"),
    ("long", f"line 2\\) of .* more than the {MAX_LINE_CHARS}"),
])
def test_text_reader_names_the_problem(inputs, name, message):
    with pytest.raises(DataError, match=message):
        read_lines(inputs[name])


@pytest.mark.parametrize("args, message", [
    (["model=nope"], "model=nope is not an option of model (no configs/model/nope.yaml); "
                     "choose one of "),
    (["modle=dcgan"], "unknown config key modle (did you mean model?)"),
    (["optimizer.generator.learnig_rate=1e-4"],
     "did you mean optimizer.generator.learning_rate?"),
    (["loss=hinge,minimax"], "has several values; add -m"),
    (["train.steps=[1"], "an override could not be parsed"),
])
def test_preflight_turns_hydra_errors_into_one_sentence(args, message):
    problem = config_problem(str(CONFIG_DIR), "train", args)
    assert problem and message in problem and "\n" not in problem


@pytest.mark.parametrize("args", [[], ["model=mlp", "train.steps=3"], ["--cfg", "job"],
                                  ["-m", "loss=hinge,minimax"], ["hydra.run.dir=/tmp/x"]])
def test_preflight_leaves_good_overrides_and_flags_to_hydra(args):
    assert config_problem(str(CONFIG_DIR), "train", args) is None


def test_preflight_finds_an_output_dir_that_cannot_be_created(tmp_path):
    (tmp_path / "a_file").write_text("")
    problem = output_dir_problem([f"hydra.run.dir={tmp_path}/a_file/run"])
    assert problem and "is a file; choose another hydra.run.dir" in problem
    assert output_dir_problem([f"hydra.run.dir={tmp_path}/new/run"]) is None
