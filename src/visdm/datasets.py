"""Small, public image data sets read from local files, for tests, demos and benchmarks.

Nothing here downloads anything: the marketplace's machines have no network at run time. The
Fashion-MNIST files come from the Debian package ``dataset-fashion-mnist`` (installed by the
project's set-up), which puts the four IDX files under ``/usr/share/datasets/fashion-mnist``.

The IDX reader is strict (Y. LeCun's format, http://yann.lecun.com/exdb/mnist/): the magic
number must name unsigned bytes and the expected number of dimensions, every dimension must be
positive, and the payload must hold exactly the number of bytes the header announces. A file
that is corrupt, truncated or padded raises :class:`~visdm.errors.InvalidInputError` naming the
file; a missing file raises :class:`DatasetNotFoundError` saying what to install.

Error tree addition (kept here until it moves into :mod:`visdm.errors`)::

    VisdmError
    └── DatasetNotFoundError (FileNotFoundError)
"""

from __future__ import annotations

import gzip
import io
import logging
import zlib
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from visdm.errors import InvalidInputError, VisdmError

__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_ROOT",
    "DatasetNotFoundError",
    "export_fashion_mnist",
    "load_fashion_mnist",
    "load_fashion_mnist_subset",
    "read_idx",
]

#: where the Debian package ``dataset-fashion-mnist`` installs the IDX files
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

#: class names, in label order (Xiao, Rasul & Vollgraf, 2017)
FASHION_MNIST_CLASSES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
_SUBSET_SIZES = {"train": 2_000, "test": 1_000}
_log = logging.getLogger("visdm.datasets")
_UBYTE = 0x08
_MAX_DIMS = 4
# a cap on the announced payload, so a corrupt header cannot make us allocate terabytes
_MAX_PAYLOAD = 1 << 31


class DatasetNotFoundError(VisdmError, FileNotFoundError):
    """A local data set's files are not installed."""

    exit_code = 2


def read_idx(path: Path | str, *, ndim: int) -> NDArray[np.uint8]:
    """Read one IDX file of unsigned bytes (optionally gzip-compressed) into an array.

    ``ndim`` is the number of dimensions the caller expects (3 for images, 1 for labels).
    Raises :class:`~visdm.errors.InvalidInputError` naming the file when the magic number, the
    dimensions or the payload length are wrong, or when the gzip stream is corrupt or
    truncated; :class:`DatasetNotFoundError` when the file does not exist.
    """
    path = Path(path)
    if not 1 <= ndim <= _MAX_DIMS:
        raise InvalidInputError(f"ndim must be between 1 and {_MAX_DIMS}, got {ndim}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path}: no such file") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidInputError(
                f"{path}: not a valid gzip stream ({exc}); the file is corrupt or truncated, "
                "reinstall it"
            ) from None
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise InvalidInputError(
            f"{path}: {len(raw)} bytes is shorter than an IDX header with {ndim} dimension(s)"
        )
    zero, dtype_code, file_ndim = int.from_bytes(raw[0:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype_code != _UBYTE or file_ndim != ndim:
        raise InvalidInputError(
            f"{path}: bad IDX magic number 0x{raw[0:4].hex()}, expected "
            f"0x0000{_UBYTE:02x}{ndim:02x} (unsigned bytes, {ndim} dimension(s))"
        )
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if any(d == 0 for d in dims):
        raise InvalidInputError(f"{path}: IDX header announces an empty dimension {dims}")
    expected = 1
    for d in dims:
        expected *= d  # Python ints: a corrupt header cannot overflow the product
    if expected > _MAX_PAYLOAD:
        raise InvalidInputError(f"{path}: IDX header announces an implausible shape {dims}")
    payload = len(raw) - header_len
    if payload != expected:
        what = "truncated" if payload < expected else "longer than its header says"
        raise InvalidInputError(
            f"{path}: IDX payload is {what}: header {dims} needs {expected} bytes, "
            f"file holds {payload}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_len).reshape(dims).copy()


def load_fashion_mnist(
    split: Literal["train", "test"] = "train",
    *,
    limit: int | None = None,
    root: Path | str | None = None,
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """Load Fashion-MNIST (Xiao et al., 2017) from the local IDX files.

    Returns ``(images, labels)``: ``uint8`` images of shape ``(N, 28, 28)`` and ``int64``
    labels in ``0..9`` (names in :data:`FASHION_MNIST_CLASSES`). ``split`` is ``"train"``
    (60,000 samples) or ``"test"`` (10,000); ``limit`` keeps the first ``limit`` samples;
    ``root`` overrides :data:`FASHION_MNIST_ROOT`.
    """
    if split not in _FILES:
        raise InvalidInputError(f"unknown split {split!r}: use 'train' or 'test'")
    if limit is not None and limit < 0:
        raise InvalidInputError(f"limit must be >= 0, got {limit}")
    base = FASHION_MNIST_ROOT if root is None else Path(root)
    image_name, label_name = _FILES[split]
    image_path, label_path = base / image_name, base / label_name
    missing = [p for p in (image_path, label_path) if not p.is_file()]
    if missing and root is None and (limit is not None and limit <= _SUBSET_SIZES[split]):
        # no Debian package and no network: the first images ship with the package
        _log.warning(
            "Fashion-MNIST is not installed; using the %d %s images shipped with visdm",
            _SUBSET_SIZES[split],
            split,
        )
        return load_fashion_mnist_subset(split, limit=limit)
    if missing:
        names = ", ".join(str(p) for p in missing)
        raise DatasetNotFoundError(
            f"Fashion-MNIST is not installed ({names} missing): run "
            "'apt-get install dataset-fashion-mnist' (or 'make setup'), or pass root= "
            "pointing at a folder with the four IDX .gz files"
        )
    images = read_idx(image_path, ndim=3)
    labels = read_idx(label_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise InvalidInputError(f"{image_path}: images are {images.shape[1:]}, expected 28x28")
    if images.shape[0] != labels.shape[0]:
        raise InvalidInputError(
            f"{image_path} holds {images.shape[0]} images but {label_path} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= len(FASHION_MNIST_CLASSES):
        raise InvalidInputError(
            f"{label_path}: label {int(labels.max())} is outside "
            f"0..{len(FASHION_MNIST_CLASSES) - 1}"
        )
    if limit is not None:
        images, labels = images[:limit].copy(), labels[:limit].copy()
    return images, labels.astype(np.int64)


def load_fashion_mnist_subset(
    split: Literal["train", "test"] = "train", *, limit: int | None = None
) -> tuple[NDArray[np.uint8], NDArray[np.int64]]:
    """The first 2,000 training / 1,000 test images of Fashion-MNIST (MIT licence), shipped in
    the package so that the demo runs on a machine with neither the Debian package nor network.
    Identical to the first images of the full set."""
    if split not in _FILES:
        raise InvalidInputError(f"unknown split {split!r}: use 'train' or 'test'")
    if limit is not None and not 0 <= limit <= _SUBSET_SIZES[split]:
        raise DatasetNotFoundError(
            f"the shipped Fashion-MNIST subset has {_SUBSET_SIZES[split]} {split} images, "
            f"{limit} were asked for: install dataset-fashion-mnist for more"
        )
    data = resources.files("visdm.data").joinpath("fashion-mnist-subset.npz").read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        images = np.asarray(archive[f"{split}_images"])
        labels = np.asarray(archive[f"{split}_labels"]).astype(np.int64)
    n = _SUBSET_SIZES[split] if limit is None else limit
    return images[:n].copy(), labels[:n].copy()


def export_fashion_mnist(
    out_dir: Path,
    *,
    count: int,
    offset: int = 0,
    split: Literal["train", "test"] = "test",
    root: Path | None = None,
) -> Path:
    """Write ``count`` Fashion-MNIST images as PNG files plus a ``labels.csv`` into ``out_dir``
    (which must not exist yet): a ready-made folder for ``visdm asset add``."""
    if count <= 0:
        raise InvalidInputError(f"count must be positive, got {count}")
    if offset < 0:
        raise InvalidInputError(f"offset must not be negative, got {offset}")
    if out_dir.exists():
        raise InvalidInputError(f"{out_dir} already exists: choose a new folder")
    images, labels = load_fashion_mnist(split, limit=offset + count, root=root)
    if images.shape[0] < offset + count:
        raise InvalidInputError(
            f"the {split} split has {images.shape[0]} images; offset {offset} + count {count} "
            "is too many"
        )
    from PIL import Image

    out_dir.mkdir(parents=True)
    rows = ["filename,label"]
    for i in range(offset, offset + count):
        name = f"fmnist-{split}-{i:05d}.png"
        Image.fromarray(images[i]).save(out_dir / name)
        label = FASHION_MNIST_CLASSES[int(labels[i])].lower().replace("/", "-").replace(" ", "-")
        rows.append(f"{name},{label}")
    (out_dir / "labels.csv").write_text("\n".join(rows) + "\n")
    return out_dir
