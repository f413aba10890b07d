"""Fuzzing the loaders (issue 14): arbitrary .npz contents, arbitrary text bytes, arbitrary
JSON and YAML in the run-directory files ganrun reads back. Each input either loads or raises
ganrun's one-sentence error (a GanrunError, one line), never anything else. Hypothesis draws
the inputs; the example counts keep the whole file well under a minute."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ganrun.errors import GanrunError

FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

DTYPES = st.sampled_from([np.uint8, np.int8, np.int32, np.int64, np.uint64, np.float32,
                          np.float64, np.bool_, np.complex64])
ARRAYS = st.one_of(
    hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=6)),
    # Whole images with labels of any range, NaN and inf included.
    st.builds(lambda n: np.zeros((n, 4, 4), np.uint8), st.integers(1, 8)),
    hnp.arrays(np.int64, st.integers(1, 8), elements=st.integers(-2**62, 2**62)),
    hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(allow_nan=True)),
    st.lists(st.text(max_size=3), max_size=3).map(lambda v: np.array(v + [None], object)),
)
KEYS = st.sampled_from(["x_train", "y_train", "x_test", "y_test", "other"])


def _one_sentence(error: GanrunError) -> None:
    message = str(error)
    assert message and "\n" not in message and message.rstrip().endswith("."), message


def _loads_or_one_sentence(load, *args):
    try:
        return load(*args)
    except GanrunError as error:
        _one_sentence(error)
        return None


@FAST
@given(arrays=st.dictionaries(KEYS, ARRAYS, max_size=4), raw=st.none() | st.binary(max_size=64))
def test_any_npz_loads_or_is_one_sentence(arrays, raw):
    from ganrun.data.images import load_keras_npz

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "data.npz"
        if raw is not None:
            path.write_bytes(raw)
        else:
            np.savez(path, **arrays)  # object arrays are pickled: the loader must refuse them
        data = _loads_or_one_sentence(load_keras_npz, path, "fuzz")
    if data is not None:
        assert data.x_train.dtype == np.uint8 and data.x_train.ndim == 4
        if data.y_train is not None:
            assert data.y_train.min() >= 0 and data.y_train.max() < len(data.y_train)


@FAST
@given(raw=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_text_file_loads_or_is_one_sentence(raw):
    from ganrun.data.corpora import load_text

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "corpus.txt"
        path.write_bytes(raw)
        data = _loads_or_one_sentence(load_text, str(path), None, "char", 8)
    if data is not None:
        assert data.x_train.shape[1] == 8 and data.x_train.max() < data.spec.vocab_size


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
SPEC_LIKE = st.fixed_dictionaries(
    {"kind": st.sampled_from(["image", "text", "x"]), "name": st.text(max_size=4),
     "shape": st.lists(st.integers(-2, 2**40), max_size=4), "num_classes": JSON,
     "num_examples": st.integers(-1, 10), "source": st.text(max_size=4)})


@FAST
@given(content=JSON | SPEC_LIKE, truncate=st.integers(0, 200))
def test_any_json_in_a_run_directory_loads_or_is_one_sentence(content, truncate):
    from ganrun.data.spec import DataSpec
    from ganrun.data.text import Vocabulary
    from ganrun.evaluate.best import read_best
    from ganrun.rundir import read_json

    text = json.dumps(content)
    text = text[:truncate] if truncate < len(text) else text
    with tempfile.TemporaryDirectory() as directory:
        for name, load in (("data_spec.json", DataSpec.from_json),
                           ("vocab.json", Vocabulary.from_json),
                           ("metrics.json", read_json)):
            (Path(directory) / name).write_text(text)
            _loads_or_one_sentence(load, Path(directory) / name)
        (Path(directory) / "best.json").write_text(text)
        _loads_or_one_sentence(read_best, Path(directory))


YAML_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list("abz:_-[]{}#&*!|>'\"%@`\n\t ${}.0123")), max_size=80),
    JSON.map(json.dumps),  # JSON is YAML
    st.fixed_dictionaries({"data": JSON, "model": JSON, "loss": JSON, "optimizer": JSON})
    .map(json.dumps),
)


@FAST
@given(text=YAML_TEXT)
def test_any_yaml_in_a_run_directory_loads_or_is_one_sentence(text):
    from ganrun.report import load_run
    from ganrun.rundir import load_experiment

    with tempfile.TemporaryDirectory() as directory:
        run_dir = Path(directory)
        (run_dir / "experiment.yaml").write_text(text)
        (run_dir / ".hydra").mkdir()
        (run_dir / ".hydra" / "overrides.yaml").write_text(text)
        _loads_or_one_sentence(load_experiment, run_dir)
        run = load_run(run_dir, run_dir)  # a sweep report lists a damaged run, as an error
        assert run.error is None or "\n" not in run.error


@pytest.mark.parametrize("obj", [np.array([1, None], object)])
def test_object_arrays_are_refused_not_unpickled(tmp_path, obj):
    from ganrun.data.images import load_keras_npz

    np.savez(tmp_path / "x.npz", x_train=obj)
    with pytest.raises(GanrunError, match="is not a readable .npz file"):
        load_keras_npz(tmp_path / "x.npz", "x")
