"""Image datasets: MNIST (with its offline-first lookup), any Keras-layout .npz, fake images.

Every loader returns an `ImageData`: uint8 pixels in NHWC layout plus a `DataSpec`. Scaling to
the generator's pixel range happens on the device, per batch (see `ganrun.trainers.image`), so the
training set stays uint8 in memory (47 MB for MNIST instead of 188 MB as float32).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ganrun.data.spec import MAX_CLASSES, DataSpec, check_fits_memory, label_frequencies
from ganrun.errors import DataError

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
MNIST_SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"


@dataclasses.dataclass(frozen=True)
class ImageData:
    """An image dataset held in host memory.

    Attributes:
      x_train: uint8 (N, H, W, C), values 0..255.
      y_train: int32 (N,) class ids in [0, num_classes), or None when unlabelled.
      x_test, y_test: the same for the test split, or None when the file has none.
      spec: the data's interface to the models.
    """

    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    spec: DataSpec


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keras_cache_dir() -> Path:
    """Where `keras.utils.get_file` caches datasets: $KERAS_HOME/datasets or ~/.keras/datasets."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"


def find_mnist(path: str | None) -> Path | None:
    """The first MNIST file that exists: `path`, $GANRUN_DATA_DIR/mnist.npz, the Keras cache.

    An explicit `path` that does not exist is an error rather than a fall-through, so a typo
    never silently trains on some other file.
    """
    if path:
        explicit = Path(path).expanduser()
        if not explicit.is_file():
            what = "is a directory, not a file" if explicit.is_dir() else "does not exist"
            raise DataError(f"data.path={path} {what}; point data.path at mnist.npz.")
        return explicit
    candidates = []
    if os.environ.get("GANRUN_DATA_DIR"):
        candidates.append(Path(os.environ["GANRUN_DATA_DIR"]) / "mnist.npz")
    candidates.append(keras_cache_dir() / "mnist.npz")
    return next((c for c in candidates if c.is_file()), None)


def download_mnist() -> Path:
    """Download MNIST into the Keras cache the way Keras does, verifying its SHA-256."""
    import keras  # imported here: only the download path needs it

    try:
        return Path(keras.utils.get_file("mnist.npz", MNIST_URL, file_hash=MNIST_SHA256))
    except Exception as exc:  # Keras raises a bare Exception on URL failures
        raise DataError(
            f"MNIST is not on this machine and could not be downloaded ({exc}); set "
            "data.path=<file> or GANRUN_DATA_DIR=<dir holding mnist.npz>."
        ) from None


def load_mnist(path: str | None = None, sha256: str | None = MNIST_SHA256,
               download: bool = True) -> ImageData:
    """MNIST from the first file found (see `find_mnist`), downloading it if allowed.

    Args:
      path: explicit file; default: look in $GANRUN_DATA_DIR, then the Keras cache.
      sha256: expected hash of the file (the canonical Keras mnist.npz); None skips the check.
      download: fetch the file into the Keras cache when it is nowhere on disk.
    """
    found = find_mnist(path)
    if found is None:
        if not download:
            raise DataError(
                "mnist.npz was not found and data.download=false; set data.path=<file> or "
                "GANRUN_DATA_DIR=<dir holding mnist.npz>."
            )
        found = download_mnist()
    if sha256:
        actual = sha256_of(found)
        if actual != sha256:
            raise DataError(
                f"{found} is not the canonical MNIST file (SHA-256 {actual[:12]}…, expected "
                f"{sha256[:12]}…); replace it, or use data=npz for other image files."
            )
    return load_keras_npz(found, name="mnist")


def load_keras_npz(path: str | Path, name: str) -> ImageData:
    """Read a Keras-layout image .npz: x_train (N,H,W[,C]) uint8, optional y_train/x_test/y_test."""
    path = Path(path)
    try:
        check_fits_memory(_npz_bytes(path), f"{path}'s arrays",
                          "use a smaller file or a machine with more memory")
        with np.load(path, allow_pickle=False) as arrays:
            content = {key: arrays[key] for key in arrays.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, MemoryError,
            NotImplementedError, zlib.error) as exc:
        raise DataError(
            f"{path} is not a readable .npz file ({type(exc).__name__}); re-download or "
            "re-create it."
        ) from None
    x_train = _images(content, "x_train", path, required=True)
    y_train = _labels(content, "y_train", x_train, path)
    x_test = _images(content, "x_test", path, required=False)
    y_test = _labels(content, "y_test", x_test, path) if x_test is not None else None
    if x_test is not None and x_test.shape[1:] != x_train.shape[1:]:
        raise DataError(f"{path}: x_test images are {x_test.shape[1:]} but x_train images are "
                        f"{x_train.shape[1:]}; both splits must have one image size.")
    labels = [y for y in (y_train, y_test) if y is not None]
    num_classes = int(max(y.max() for y in labels)) + 1 if labels else 0
    spec = DataSpec(kind="image", name=name, shape=tuple(int(d) for d in x_train.shape[1:]),
                    num_classes=num_classes, num_examples=int(x_train.shape[0]),
                    source=f"{path.resolve()} (sha256 {sha256_of(path)})",
                    class_frequencies=label_frequencies(y_train, num_classes))
    return ImageData(x_train, y_train, x_test, y_test, spec)


def _npz_bytes(path: Path) -> int:
    """The bytes the arrays of an .npz will take once loaded, from their headers alone (a
    few KB read), so an oversized or malicious file is refused before it is decompressed."""
    total = 0
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            with archive.open(member) as handle:
                version = np.lib.format.read_magic(handle)
                read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                        else np.lib.format.read_array_header_2_0)
                shape, _, dtype = read(handle)
                total += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    return total


def _images(content: dict, key: str, path: Path, required: bool) -> np.ndarray | None:
    """uint8 NHWC images from `content[key]`, adding a channel axis to (N, H, W) arrays."""
    if key not in content:
        if required:
            raise DataError(f"{path} has no '{key}' array (it has {sorted(content)}); use a "
                            "Keras-layout .npz with x_train (N, H, W[, C]) uint8.")
        return None
    images = content[key]
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
        raise DataError(f"{path}: '{key}' is {images.dtype} {images.shape}, expected uint8 "
                        "(N, H, W) or (N, H, W, 1|3); convert the images to 8-bit.")
    if images.shape[0] == 0:
        raise DataError(f"{path}: '{key}' holds no images; use a file with at least one.")
    if min(images.shape[1:3]) == 0:
        raise DataError(f"{path}: '{key}' is {images.shape}, images of zero height or width; "
                        "use images of at least 1x1 pixels.")
    return images


def _labels(content: dict, key: str, images: np.ndarray, path: Path) -> np.ndarray | None:
    """int32 class ids from `content[key]`, checked against the images they label."""
    if key not in content:
        return None
    labels = content[key].reshape(-1)
    if labels.shape[0] != images.shape[0] or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: '{key}' is {labels.dtype} {content[key].shape} but there are "
                        f"{images.shape[0]} images; labels must be one integer per image.")
    # A class count sizes the conditional models' label embedding: one stray id of 10^9
    # would allocate a billion rows. Ids must be below MAX_CLASSES and below the number of
    # images (more classes than images is a wrong file, not a dataset).
    limit = min(MAX_CLASSES, labels.shape[0])
    bad = np.flatnonzero((labels < 0) | (labels >= limit))
    if bad.size and labels[bad[0]] < 0:
        raise DataError(f"{path}: '{key}' has negative class ids (the first, "
                        f"{int(labels[bad[0]])}, at index {int(bad[0])}); use ids 0..K-1.")
    if bad.size:
        index = int(bad[0])
        raise DataError(f"{path}: '{key}' has class id {int(labels[index])} at index {index}, "
                        f"outside 0..{limit - 1} (ids must be below {MAX_CLASSES} and below the "
                        f"{labels.shape[0]} images); use ids 0..K-1.")
    return labels.astype(np.int32)


def make_fake_images(num_examples: int = 256, height: int = 28, width: int = 28,
                     channels: int = 1, num_classes: int = 10, seed: int = 0) -> ImageData:
    """A small in-memory labelled image set for tests: class c is a bright bar at a position
    set by c, on a noisy dark background, so a GAN has something learnable to fit."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, num_classes, size=num_examples).astype(np.int32)
    images = rng.integers(0, 40, size=(num_examples, height, width, channels), dtype=np.uint8)
    for index, label in enumerate(labels):
        row = int(label * (height - 4) / max(num_classes - 1, 1))
        images[index, row:row + 4, width // 4: 3 * width // 4, :] = 230
    spec = DataSpec(kind="image", name="fake", shape=(height, width, channels),
                    num_classes=num_classes, num_examples=num_examples,
                    source=f"generated (make_fake_images seed={seed})",
                    class_frequencies=label_frequencies(labels, num_classes))
    return ImageData(images, labels, images[: num_examples // 4], labels[: num_examples // 4],
                     spec)
