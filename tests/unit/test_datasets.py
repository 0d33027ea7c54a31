"""The strict IDX reader and the Fashion-MNIST loader."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from visdm.datasets import (
    FASHION_MNIST_ROOT,
    DatasetNotFoundError,
    load_fashion_mnist,
    read_idx,
)
from visdm.errors import InvalidInputError, VisdmError

pytestmark = pytest.mark.unit


def _idx(array: np.ndarray, *, magic: bytes | None = None) -> bytes:
    head = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    return head + b"".join(struct.pack(">I", d) for d in array.shape) + array.tobytes()


def _write_set(root: Path, images: np.ndarray, labels: np.ndarray, *, split: str = "t10k") -> None:
    (root / f"{split}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx(images)))
    (root / f"{split}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(labels)))


@pytest.fixture
def tiny_set(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    labels = np.array([0, 9, 3, 3, 1], dtype=np.uint8)
    _write_set(tmp_path, images, labels)
    return tmp_path, images, labels


def test_round_trip_plain_and_gzip(tmp_path: Path) -> None:
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    plain = tmp_path / "a-idx3-ubyte"
    plain.write_bytes(_idx(array))
    packed = tmp_path / "a-idx3-ubyte.gz"
    packed.write_bytes(gzip.compress(_idx(array)))
    np.testing.assert_array_equal(read_idx(plain, ndim=3), array)
    np.testing.assert_array_equal(read_idx(packed, ndim=3), array)


def test_loader_reads_a_synthetic_set(tiny_set: tuple[Path, np.ndarray, np.ndarray]) -> None:
    root, images, labels = tiny_set
    got_images, got_labels = load_fashion_mnist("test", root=root)
    np.testing.assert_array_equal(got_images, images)
    assert got_labels.dtype == np.int64
    np.testing.assert_array_equal(got_labels, labels)
    few_images, few_labels = load_fashion_mnist("test", root=root, limit=2)
    assert few_images.shape == (2, 28, 28)
    np.testing.assert_array_equal(few_labels, labels[:2])


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_idx(np.zeros((2, 2), np.uint8))[:-1], "truncated"),
        (_idx(np.zeros((2, 2), np.uint8)) + b"\0", "longer than its header"),
        (_idx(np.zeros((2, 2), np.uint8), magic=b"\0\0\x0d\x02"), "magic number"),
        (_idx(np.zeros((2, 2), np.uint8), magic=b"\1\0\x08\x02"), "magic number"),
        (_idx(np.zeros((2, 2, 2), np.uint8)), "magic number"),
        (b"\0\0\x08", "shorter than an IDX header"),
        (b"\0\0\x08\x02" + struct.pack(">II", 0, 3), "empty dimension"),
        (b"\0\0\x08\x02" + struct.pack(">II", 0xFFFFFFFF, 0xFFFFFFFF), "implausible"),
    ],
)
def test_corrupt_idx_is_rejected_with_the_file_name(
    tmp_path: Path, data: bytes, match: str
) -> None:
    path = tmp_path / "bad-idx2-ubyte"
    path.write_bytes(data)
    with pytest.raises(InvalidInputError, match=match) as info:
        read_idx(path, ndim=2)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("cut", [10, 40, -8])
def test_truncated_or_corrupt_gzip_is_rejected(tmp_path: Path, cut: int) -> None:
    blob = gzip.compress(_idx(np.arange(256, dtype=np.uint8).reshape(16, 16)))
    path = tmp_path / "cut-idx2-ubyte.gz"
    path.write_bytes(blob[:cut])
    with pytest.raises(InvalidInputError, match="gzip") as info:
        read_idx(path, ndim=2)
    assert str(path) in str(info.value)


def test_flipped_gzip_byte_is_rejected(tmp_path: Path) -> None:
    blob = bytearray(gzip.compress(_idx(np.arange(256, dtype=np.uint8).reshape(16, 16))))
    blob[-6] ^= 0xFF  # inside the CRC32 trailer
    path = tmp_path / "crc-idx2-ubyte.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(InvalidInputError, match="gzip"):
        read_idx(path, ndim=2)


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    _write_set(tmp_path, np.zeros((3, 28, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(InvalidInputError, match="3 images but"):
        load_fashion_mnist("test", root=tmp_path)


def test_wrong_image_size_and_bad_label(tmp_path: Path) -> None:
    _write_set(tmp_path, np.zeros((2, 27, 28), np.uint8), np.zeros(2, np.uint8))
    with pytest.raises(InvalidInputError, match="28x28"):
        load_fashion_mnist("test", root=tmp_path)
    _write_set(tmp_path, np.zeros((2, 28, 28), np.uint8), np.array([1, 10], np.uint8))
    with pytest.raises(InvalidInputError, match="label 10"):
        load_fashion_mnist("test", root=tmp_path)


def test_missing_directory_says_what_to_install(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_fashion_mnist("train", root=tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, VisdmError)
    with pytest.raises(DatasetNotFoundError):
        read_idx(tmp_path / "nowhere.gz", ndim=1)


def test_bad_arguments(tiny_set: tuple[Path, np.ndarray, np.ndarray]) -> None:
    root, _, _ = tiny_set
    with pytest.raises(InvalidInputError, match="unknown split"):
        load_fashion_mnist("validation", root=root)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="limit"):
        load_fashion_mnist("test", root=root, limit=-1)
    with pytest.raises(InvalidInputError, match="ndim"):
        read_idx(root / "t10k-labels-idx1-ubyte.gz", ndim=0)


def test_installed_fashion_mnist() -> None:
    """The real files from the Debian package (installed by the project's set-up)."""
    images, labels = load_fashion_mnist("test", root=FASHION_MNIST_ROOT, limit=1000)
    assert images.shape == (1000, 28, 28)
    assert images.dtype == np.uint8
    assert set(np.unique(labels).tolist()) == set(range(10))
    train_images, train_labels = load_fashion_mnist("train")
    assert train_images.shape == (60000, 28, 28)
    assert np.bincount(train_labels).tolist() == [6000] * 10


def test_the_shipped_subset_is_the_first_images_of_the_full_set() -> None:
    from visdm.datasets import load_fashion_mnist_subset

    for split, n in (("train", 2_000), ("test", 1_000)):
        x, y = load_fashion_mnist_subset(split)  # type: ignore[arg-type]
        assert x.shape == (n, 28, 28) and y.shape == (n,)
        full_x, full_y = load_fashion_mnist(split, limit=n)  # type: ignore[arg-type]
        assert (x == full_x).all() and (y == full_y).all()


def test_without_the_debian_package_the_shipped_subset_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import visdm.datasets as datasets

    monkeypatch.setattr(datasets, "FASHION_MNIST_ROOT", tmp_path / "not-installed")
    with caplog.at_level("WARNING", logger="visdm.datasets"):
        x, _ = datasets.load_fashion_mnist("test", limit=300)
    assert x.shape == (300, 28, 28)
    assert "shipped with visdm" in caplog.text
    with pytest.raises(DatasetNotFoundError, match="apt-get install"):
        datasets.load_fashion_mnist("train", limit=5_000)
    with pytest.raises(DatasetNotFoundError, match="apt-get install"):
        datasets.load_fashion_mnist("train")  # the whole set is not shipped
    with pytest.raises(DatasetNotFoundError, match="subset has 1000 test images"):
        datasets.load_fashion_mnist_subset("test", limit=1_001)
