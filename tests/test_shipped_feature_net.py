"""The MNIST feature network ships with the package: used for the canonical MNIST file with
the default settings, never for any other data."""

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
import yaml

from ganrun.data.images import load_mnist, make_fake_images
from ganrun.evaluate import feature_net
from ganrun.evaluate.feature_net import SHIPPED_DIR, EvaluatorOptions, load_or_train
from tests.conftest import CONFIG_DIR, data_dir


def _shipped_entries():
    return sorted(p for p in SHIPPED_DIR.iterdir() if p.is_dir())


def test_the_package_ships_one_complete_mnist_entry_with_its_definition():
    entries = _shipped_entries()
    assert [p.name.split("-")[0] for p in entries] == ["mnist"]
    info = json.loads((entries[0] / "classifier.json").read_text())
    assert (entries[0] / "classifier.keras").is_file()
    canonical = yaml.safe_load((CONFIG_DIR / "data" / "mnist.yaml").read_text())["sha256"]
    assert info["source_file"]["sha256"] == canonical
    assert info["test_accuracy"] >= 0.99 and info["test_examples"] == 10000
    assert info["architecture"] == feature_net.ARCHITECTURE
    defaults = EvaluatorOptions()
    assert (info["seed"], info["epochs"], info["feature_dim"]) == (
        defaults.seed, defaults.epochs, defaults.feature_dim)


@pytest.mark.skipif(data_dir() is None, reason="needs $GANRUN_DATA_DIR/mnist.npz")
def test_mnist_uses_the_shipped_network_without_training(tmp_path, monkeypatch):
    path = data_dir() / "mnist.npz"
    canonical = yaml.safe_load((CONFIG_DIR / "data" / "mnist.yaml").read_text())["sha256"]
    assert hashlib.sha256(path.read_bytes()).hexdigest() == canonical
    monkeypatch.setattr(feature_net, "_train", lambda *a: pytest.fail("trained a network"))
    data = load_mnist(str(path))
    net = load_or_train(data, EvaluatorOptions(cache_dir=str(tmp_path / "cache")))
    assert net.info["path"].startswith(str(SHIPPED_DIR))
    assert net.info["data_hash"] == feature_net.data_hash(data)
    # Floors and anything else written go to the user's cache, never into the package.
    assert net.info["cache_entry"].startswith(str(tmp_path / "cache"))
    assert feature_net.shipped_entry(data, EvaluatorOptions()) is not None
    # Other settings are another network: not the shipped one.
    assert feature_net.shipped_entry(data, EvaluatorOptions(epochs=3)) is None


def test_other_data_never_takes_a_network_from_the_package(tmp_path, monkeypatch):
    # Even with a planted package entry under the dataset's name, fake data's key differs,
    # so it trains and caches its own network.
    shipped = tmp_path / "package"
    shutil.copytree(SHIPPED_DIR, shipped)
    for entry in list(shipped.iterdir()):
        entry.rename(shipped / ("fake-" + entry.name.split("-", 1)[1]))
    monkeypatch.setattr(feature_net, "SHIPPED_DIR", shipped)
    before = sorted(p.name for p in shipped.rglob("*"))
    data = make_fake_images(seed=0)
    options = EvaluatorOptions(epochs=1, batch_size=32, feature_dim=16,
                               cache_dir=str(tmp_path / "cache"))
    assert feature_net.shipped_entry(data, options) is None
    net = load_or_train(data, options)
    assert net.info["path"].startswith(str(tmp_path / "cache"))
    assert sorted(p.name for p in shipped.rglob("*")) == before
    again = load_or_train(data, dataclasses.replace(options))
    np.testing.assert_array_equal(again.embed(data.x_test)[0], net.embed(data.x_test)[0])
