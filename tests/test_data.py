"""Image data loading: MNIST lookup order, hash check, offline behaviour, npz validation."""

import hashlib

import numpy as np
import pytest

from ganrun.data import images
from ganrun.errors import DataError


def _write_npz(path, n=5, **extra):
    arrays = {"x_train": np.zeros((n, 28, 28), np.uint8), "y_train": np.arange(n) % 3,
              "x_test": np.zeros((2, 28, 28), np.uint8), "y_test": np.array([0, 1])}
    arrays.update(extra)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


@pytest.fixture
def no_mnist_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv("GANRUN_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    return tmp_path


def test_lookup_order_path_then_env_then_keras_cache(no_mnist_anywhere, monkeypatch):
    tmp = no_mnist_anywhere
    cache = tmp / "keras_home" / "datasets"
    cache.mkdir(parents=True)
    _write_npz(cache / "mnist.npz", n=3)
    assert images.load_mnist(sha256=None).spec.num_examples == 3
    (tmp / "env").mkdir()
    _write_npz(tmp / "env" / "mnist.npz", n=4)
    monkeypatch.setenv("GANRUN_DATA_DIR", str(tmp / "env"))
    assert images.load_mnist(sha256=None).spec.num_examples == 4
    explicit = _write_npz(tmp / "explicit.npz", n=6)
    assert images.load_mnist(path=str(explicit), sha256=None).spec.num_examples == 6


def test_spec_comes_from_the_file(tmp_path):
    data = images.load_keras_npz(_write_npz(tmp_path / "d.npz"), name="d")
    assert data.x_train.shape == (5, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.spec.shape == (28, 28, 1) and data.spec.num_classes == 3
    assert hashlib.sha256((tmp_path / "d.npz").read_bytes()).hexdigest() in data.spec.source


def test_wrong_hash_is_refused(tmp_path):
    path = _write_npz(tmp_path / "mnist.npz")
    with pytest.raises(DataError, match="not the canonical MNIST"):
        images.load_mnist(path=str(path))


def test_missing_explicit_path_does_not_fall_through(no_mnist_anywhere):
    with pytest.raises(DataError, match="data.path=/nope/mnist.npz does not exist"):
        images.load_mnist(path="/nope/mnist.npz")


def test_offline_without_a_file_names_both_fixes(no_mnist_anywhere, monkeypatch):
    import keras

    def offline(*args, **kwargs):  # what keras.utils.get_file raises without a network
        raise Exception("URL fetch failure on https://...: None -- [Errno -2] Name or "
                        "service not known")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(DataError, match="data.path=<file> or GANRUN_DATA_DIR"):
        images.load_mnist()
    with pytest.raises(DataError, match="download=false"):
        images.load_mnist(download=False)


@pytest.mark.parametrize("content, message", [
    ({"x_train": None}, "no 'x_train'"),
    ({"x_train": np.zeros((5, 28, 28), np.float32)}, "expected uint8"),
    ({"x_train": np.zeros((5, 28, 28, 2), np.uint8)}, "expected uint8"),
    ({"y_train": np.arange(4)}, "one integer per image"),
    ({"y_train": -np.arange(5)}, "negative class ids"),
    ({"x_test": np.zeros((2, 14, 14), np.uint8)}, "one image size"),
])
def test_malformed_npz_is_explained(tmp_path, content, message):
    path = _write_npz(tmp_path / "bad.npz", **content)
    with pytest.raises(DataError, match=message):
        images.load_keras_npz(path, name="bad")


def test_truncated_npz_is_explained(tmp_path):
    path = _write_npz(tmp_path / "whole.npz")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable .npz"):
        images.load_keras_npz(truncated, name="truncated")


def test_fake_images_are_labelled_and_deterministic():
    a, b = images.make_fake_images(seed=1), images.make_fake_images(seed=1)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert a.x_train.shape == (256, 28, 28, 1) and a.spec.num_classes == 10
