"""Image datasets from files: any Keras-layout `.npz` (`data=npz`) and a folder of PNG/JPEG
images (`data=folder`), optionally one sub-folder per class. Both return an `ImageData`
(uint8 NHWC, held in memory) whose DataSpec is read from the files, never from YAML.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganrun.data.images import ImageData, load_keras_npz, sha256_of
from ganrun.data.spec import DataSpec, check_fits_memory, label_frequencies
from ganrun.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_SIDE = 16_384  # pixels per side of data.size (a resize holds a float32 copy of the image)


def load_npz(path: str | None, name: str | None = None) -> ImageData:
    """A Keras-layout .npz (x_train uint8 (N, H, W[, C]), optional y_train, x_test, y_test);
    the dataset is named after the file unless `name` is given."""
    if not path:
        raise DataError("data=npz needs a file: set data.path=<file.npz>.")
    if not Path(path).expanduser().is_file():
        raise DataError(f"data.path={path} does not exist; point data.path at a .npz file.")
    path = Path(path).expanduser()
    return load_keras_npz(path, name=name or path.stem)


def _image_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _listing(root: Path) -> tuple[list[Path], np.ndarray | None]:
    """The image files under `root` and their class ids (sub-folder index), or None labels."""
    classes = sorted(p for p in root.iterdir() if p.is_dir() and _image_files(p))
    top = _image_files(root)
    if classes and top:
        raise DataError(f"{root} holds images both at the top and in sub-folders; put every "
                        "image in a class sub-folder, or none.")
    if not classes:
        return top, None
    files, labels = [], []
    for index, folder in enumerate(classes):
        found = _image_files(folder)
        files += found
        labels += [index] * len(found)
    return files, np.asarray(labels, np.int32)


def _decode(path: Path, channels: int):
    import tensorflow as tf  # noqa: PLC0415 (only this loader needs it)

    try:
        return tf.io.decode_image(tf.io.read_file(str(path)), channels=channels,
                                  expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as exc:
        raise DataError(f"{path} is not a readable PNG/JPEG image ({exc.message.splitlines()[0]}"
                        "); remove or replace it.") from None


def _resize(image, size: tuple[int, int] | None):
    import tensorflow as tf  # noqa: PLC0415

    if size is None or tuple(image.shape[:2]) == size:
        return np.asarray(image)
    resized = tf.image.resize(tf.cast(image, tf.float32), size, antialias=True)
    return np.asarray(tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8))


def load_image_folder(path: str | None, size: list[int] | None = None, channels: int = 0,
                      name: str | None = None) -> ImageData:
    """Every PNG/JPEG under `path` (or under its class sub-folders), decoded once into memory.

    Args:
      path: the folder. With sub-folders holding images, each is a class (sorted by name:
        class ids 0..K-1); otherwise the images are unlabelled.
      size: [height, width] to resize every image to (antialiased bilinear); None keeps the
        files' size, which must then be the same for all.
      channels: 1 (grey) or 3 (RGB) to convert every image to; 0 keeps the files' channel
        count, which must then be the same for all.
    """
    if not path:
        raise DataError("data=folder needs a folder: set data.path=<dir of PNG/JPEG images>.")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"data.path={path} is not a folder; point it at a folder of images.")
    if channels not in (0, 1, 3):
        raise DataError(f"data.channels={channels} must be 1 (grey), 3 (RGB) or 0 (as stored).")
    files, labels = _listing(root)
    if not files:
        raise DataError(f"{root} holds no .png/.jpg/.jpeg images (nor do its sub-folders); "
                        "point data.path at a folder of images.")
    size = tuple(int(v) for v in size) if size else None
    if size is not None and (len(size) != 2 or not all(1 <= v <= MAX_SIDE for v in size)):
        raise DataError(f"data.size={list(size)} must be [height, width], each from 1 to "
                        f"{MAX_SIDE} pixels.")
    first = _resize(_decode(files[0], channels), size)
    # The decoded list and the stacked array exist at once: twice the data set's bytes.
    check_fits_memory(2 * len(files) * first.nbytes, f"{len(files)} images of {first.shape}",
                      "set data.size=[H, W] smaller, or use fewer images")
    images = [first] + [_resize(_decode(file, channels), size) for file in files[1:]]
    shapes = sorted({image.shape for image in images})
    if len(shapes) > 1:
        what = "channel counts" if len({s[:2] for s in shapes}) == 1 else "sizes"
        fix = "data.channels=1 or 3" if what == "channel counts" else "data.size=[H, W]"
        raise DataError(f"{root} holds images of different {what} ({shapes[0]} and "
                        f"{shapes[-1]}, ...); set {fix}.")
    x_train = np.stack(images)
    classes = 0 if labels is None else int(labels.max()) + 1
    spec = DataSpec(kind="image", name=name or root.name, shape=tuple(x_train.shape[1:]),
                    num_classes=classes, class_frequencies=label_frequencies(labels, classes),
                    num_examples=len(files), source=f"{root.resolve()} ({len(files)} files, "
                    f"first {files[0].name} sha256 {sha256_of(files[0])[:12]})")
    return ImageData(x_train, labels, None, None, spec)
