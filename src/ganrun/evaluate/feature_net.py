"""ganrun's feature network: a small classifier trained on the dataset itself, cached on disk.

Inception weights cannot be downloaded everywhere, and Inception on 28x28 digits is a poor
judge anyway, so each labelled dataset gets its own convolutional classifier, trained on its
training split (deterministic given `seed` on CPU) and tested on its test split. FID, KID and
precision/recall use its penultimate dense layer ("features", taken before the ReLU so no
dimension is constantly zero); the classifier score and class coverage use its softmax.

The trained network is cached under `<cache_dir>/<name>-<key>/` where the key hashes the
data arrays and the training settings, so changing either retrains it and an unchanged
dataset never does. For the canonical MNIST file (SHA-256 06af5dfe...1b64) and the default
settings, the entry ships with the package (`ganrun/evaluate/networks/`), so a new machine's
first run evaluates without training it; the key is the same content hash, so no other data
(nor other settings) can ever match a shipped entry. A cache entry is `classifier.keras`
(loadable with Keras' safe mode) and `classifier.json` (accuracy, seed, data hash, layer,
training time), written in that order, each atomically: the JSON's presence means the entry
is complete.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ganrun.data.images import ImageData
from ganrun.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FEATURE_LAYER = "features"
ARCHITECTURE = "conv32-conv32-pool-conv64-conv64-pool-dense128(features)-relu-dense(k)"
CACHE_ENV = "GANRUN_CACHE_DIR"
SHIPPED_DIR = Path(__file__).with_name("networks")  # entries shipped with the package
BATCH = 500  # images per forward pass when extracting features


@dataclasses.dataclass(frozen=True)
class EvaluatorOptions:
    """How the feature network is trained and where it is cached (the `evaluator:` node).

    Attributes:
      cache_dir: cache root; None means $GANRUN_CACHE_DIR, else ~/.cache/ganrun.
      epochs: passes over the training split (2 reach >= 99 % test accuracy on MNIST).
      batch_size: classifier training batch.
      learning_rate: Adam learning rate.
      seed: weights and shuffling; the same data and seed give the same network on CPU.
      feature_dim: width of the penultimate "features" layer (FID's dimension d).
    """

    cache_dir: str | None = None
    epochs: int = 2
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    feature_dim: int = 128

    def __post_init__(self):
        for name in ("epochs", "batch_size", "feature_dim"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"evaluator.{name}={value!r} must be a positive integer.")
        if not self.learning_rate > 0:
            raise ConfigError(f"evaluator.learning_rate={self.learning_rate!r} must be > 0.")

    def root(self) -> Path:
        """The cache root this run uses."""
        chosen = self.cache_dir or os.environ.get(CACHE_ENV) or "~/.cache/ganrun"
        return Path(chosen).expanduser()


def data_hash(data: ImageData) -> str:
    """SHA-256 over every array of the dataset (shapes, dtypes and bytes), hex."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_test, data.y_test):
        if array is None:
            digest.update(b"none")
            continue
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def unavailable_reason(data: ImageData) -> str | None:
    """Why this dataset cannot have ganrun's image metrics, or None if it can."""
    if data.y_train is None or data.spec.num_classes < 2:
        return (f"{data.spec.name} has no class labels, so ganrun cannot train its feature "
                "network: FID, KID, classifier score, class coverage and precision/recall are "
                "all unavailable (use labelled data with y_train, or set train.eval_every=0 "
                "and train.eval_final_n=0)")
    if data.x_test is None or data.y_test is None:
        return (f"{data.spec.name} has no labelled test split (x_test, y_test), which the "
                "metrics compare against: FID, KID, classifier score, class coverage and "
                "precision/recall are unavailable")
    return None


def build_classifier(shape: tuple[int, ...], num_classes: int, feature_dim: int) -> keras.Model:
    """Images float32 (B, H, W, C) in [0, 1] -> class probabilities (B, num_classes)."""
    inputs = keras.Input(shape, name="images")
    x = inputs
    for filters in (32, 32, None, 64, 64, None):
        x = (keras.layers.MaxPooling2D()(x) if filters is None else
             keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x))
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(feature_dim, name=FEATURE_LAYER)(x)
    x = keras.layers.Dropout(0.3)(keras.layers.ReLU()(features))
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name="ganrun_feature_net")


def _scaled(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


class FeatureNet:
    """A trained classifier and its definition; `embed` gives features and probabilities."""

    def __init__(self, model: keras.Model, info: dict):
        self.model, self.info = model, info
        self._embed = tf.function(keras.Model(
            model.inputs, [model.get_layer(FEATURE_LAYER).output, model.output]))

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float (N, H, W, C) in [0, 1] or uint8 -> features (N, d) and probs (N, k), float64."""
        if images.dtype == np.uint8:
            images = _scaled(images)
        feats, probs = [], []
        for start in range(0, len(images), BATCH):
            f, p = self._embed(tf.constant(images[start:start + BATCH], tf.float32))
            feats.append(f.numpy())
            probs.append(p.numpy())
        return (np.concatenate(feats).astype(np.float64),
                np.concatenate(probs).astype(np.float64))

    def describe(self) -> str:
        """One line naming the network, its accuracy and layer, for metric definitions."""
        info = self.info
        return (f"ganrun classifier on {info['dataset']} ({info['architecture']}, seed "
                f"{info['seed']}, test accuracy {info['test_accuracy']:.4f}); features: "
                f"layer '{info['layer']}' ({info['feature_dim']}-d, before ReLU)")


def _entry(data: ImageData, options: EvaluatorOptions, digest: str) -> Path:
    settings = {k: v for k, v in dataclasses.asdict(options).items() if k != "cache_dir"}
    key = hashlib.sha256(json.dumps([digest, settings, ARCHITECTURE], sort_keys=True)
                         .encode()).hexdigest()[:16]
    return options.root() / f"{data.spec.name}-{key}"


def _train(data: ImageData, options: EvaluatorOptions) -> tuple[keras.Model, float, float]:
    """Train on the training split; (model, test accuracy, seconds)."""
    keras.utils.set_random_seed(options.seed)
    model = build_classifier(data.spec.shape, data.spec.num_classes, options.feature_dim)
    model.compile(keras.optimizers.Adam(options.learning_rate),
                  "sparse_categorical_crossentropy", metrics=["accuracy"])
    started = time.perf_counter()
    model.fit(_scaled(data.x_train), data.y_train, batch_size=options.batch_size,
              epochs=options.epochs, shuffle=True, verbose=0)
    seconds = time.perf_counter() - started
    _, accuracy = model.evaluate(_scaled(data.x_test), data.y_test, batch_size=BATCH, verbose=0)
    return model, float(accuracy), seconds


def load_or_train(data: ImageData, options: EvaluatorOptions) -> FeatureNet:
    """The cached feature network for `data`, training (and caching) it if there is none.

    Raises DataError if the data has no labels or no test split (see `unavailable_reason`).
    """
    reason = unavailable_reason(data)
    if reason:
        raise DataError(reason + ".")
    digest = data_hash(data)
    entry = _entry(data, options, digest)
    for candidate in (SHIPPED_DIR / entry.name, entry):  # shipped first: never retrained
        found = _load_entry(candidate)
        if found:
            found.info["cache_entry"] = str(entry)  # writable, for the floors (not the package)
            return found
    model_path, info_path = entry / "classifier.keras", entry / "classifier.json"
    log.info("Training the feature network on %s (%d images, %d epochs); cached in %s.",
             data.spec.name, len(data.x_train), options.epochs, entry)
    model, accuracy, seconds = _train(data, options)
    info = {"dataset": data.spec.name, "data_hash": digest, "architecture": ARCHITECTURE,
            "layer": FEATURE_LAYER, "feature_dim": options.feature_dim, "seed": options.seed,
            "epochs": options.epochs, "test_accuracy": accuracy,
            "train_seconds": round(seconds, 1), "train_examples": int(len(data.x_train)),
            "test_examples": int(len(data.x_test)), "path": str(model_path),
            "cache_entry": str(entry)}
    log.info("Feature network: test accuracy %.4f after %.1f s of training.", accuracy, seconds)
    entry.mkdir(parents=True, exist_ok=True)
    temporary = entry / f"classifier.{os.getpid()}.tmp.keras"
    model.save(temporary)
    temporary.replace(model_path)
    write_json_atomic(info_path, info)
    return FeatureNet(model, info)


def shipped_entry(data: ImageData, options: EvaluatorOptions) -> Path | None:
    """The package's entry for this data and these settings, or None (e.g. any data other
    than the canonical MNIST file, or MNIST with non-default evaluator settings)."""
    entry = SHIPPED_DIR / _entry(data, options, data_hash(data)).name
    return entry if (entry / "classifier.json").is_file() else None


def _load_entry(entry: Path) -> FeatureNet | None:
    """A complete entry (its JSON is written last) as a FeatureNet, else None."""
    model_path, info_path = entry / "classifier.keras", entry / "classifier.json"
    if not (info_path.is_file() and model_path.is_file()):
        return None
    model = keras.saving.load_model(model_path, safe_mode=True)
    info = json.loads(info_path.read_text())
    info["path"] = str(model_path)  # where it was loaded from (cache or package)
    log.info("Feature network loaded from %s.", entry)
    return FeatureNet(model, info)


def write_json_atomic(path: Path, content: dict) -> None:
    """Write JSON to a temporary file in the same directory, then rename it over `path`."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(content, indent=2) + "\n")
    temporary.replace(path)
