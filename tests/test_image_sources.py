"""data=npz and data=folder: shapes and classes read from the files, clear errors, and a few
training steps on each (test_configs.py skips them: they need files)."""

import numpy as np
import pytest
import tensorflow as tf

from ganrun.cli import train_from_config
from ganrun.data.folders import load_image_folder, load_npz
from ganrun.errors import DataError


def _png(path, height, width, channels, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.full((height, width, channels), value, np.uint8)
    tf.io.write_file(str(path), tf.io.encode_png(image))


def _class_folder(root, size=(28, 28), channels=1):
    for label, name in enumerate(["cats", "dogs", "owls"]):
        for index in range(4):
            _png(root / name / f"{index}.png", *size, channels, 40 * label + index)
    return root


def test_npz_reads_shape_and_classes(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "colour.npz"
    np.savez(path, x_train=rng.integers(0, 255, (20, 32, 32, 3), dtype=np.uint8),
             y_train=rng.integers(0, 4, 20))
    data = load_npz(str(path))
    assert data.spec.shape == (32, 32, 3) and data.spec.num_classes == 4
    assert data.spec.name == "colour" and data.x_test is None


def test_npz_errors_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="data.path=<file.npz>"):
        load_npz(None)
    with pytest.raises(DataError, match="does not exist"):
        load_npz(str(tmp_path / "missing.npz"))


def test_folder_with_class_subfolders(tmp_path):
    data = load_image_folder(str(_class_folder(tmp_path / "animals")))
    assert data.x_train.shape == (12, 28, 28, 1) and data.x_train.dtype == np.uint8
    assert data.spec.num_classes == 3 and data.spec.name == "animals"
    assert list(data.y_train) == [0] * 4 + [1] * 4 + [2] * 4
    assert data.x_train[5, 0, 0, 0] == 40 + 1  # dogs/1.png


def test_folder_resizes_and_converts(tmp_path):
    _png(tmp_path / "a.png", 40, 30, 3, 200)
    _png(tmp_path / "b.png", 20, 20, 1, 100)
    data = load_image_folder(str(tmp_path), size=[28, 28], channels=1)
    assert data.x_train.shape == (2, 28, 28, 1) and data.y_train is None
    assert data.x_train[1].min() == data.x_train[1].max() == 100


@pytest.mark.parametrize("setup, message", [
    (lambda root: None, "holds no .png"),
    (lambda root: (root / "x.png").write_bytes(b"not a png"), "not a readable"),
    (lambda root: (_png(root / "a.png", 28, 28, 1, 0), _png(root / "b.png", 32, 32, 1, 0)),
     "data.size"),
    (lambda root: (_png(root / "a.png", 28, 28, 1, 0), _png(root / "b.png", 28, 28, 3, 0)),
     "data.channels"),
    (lambda root: (_png(root / "a.png", 28, 28, 1, 0), _png(root / "c" / "b.png", 28, 28, 1, 0)),
     "both at the top and in sub-folders"),
])
def test_folder_errors_name_the_fix(tmp_path, setup, message):
    root = tmp_path / "images"
    root.mkdir()
    setup(root)
    with pytest.raises(DataError, match=message):
        load_image_folder(str(root))


def test_folder_and_npz_train_a_conditional_gan(compose, tmp_path):
    root = _class_folder(tmp_path / "animals", size=(32, 32), channels=3)
    cfg = compose("data=folder", f"data.path={root}", "model.conditional=true")
    assert train_from_config(cfg, tmp_path / "folder_run")["step"] == 4
    path = tmp_path / "digits.npz"
    np.savez(path, x_train=np.zeros((16, 28, 28), np.uint8), y_train=np.arange(16) % 2)
    cfg = compose("data=npz", f"data.path={path}")
    assert train_from_config(cfg, tmp_path / "npz_run")["step"] == 4
