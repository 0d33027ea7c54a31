"""The training job parses every untrusted byte inside the sandbox, with bounded memory.

The node hands the job raw plaintext image files and the consumer's validation archive as
decrypted; the job decodes, bounds and screens them. What the consumer got wrong comes back as
``INPUT_REJECTED`` (the consumer's fault), never as a crash the node would be blamed for.
"""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.lib import format as npy_format
from PIL import Image

from visdm.compute.sandbox import SandboxJob, SandboxLimits, SandboxStatus, run_in_sandbox
from visdm.datasets import load_fashion_mnist
from visdm.errors import InvalidInputError
from visdm.proposals import pack_arrays
from visdm.proposals._validation import MAX_ARRAY_BYTES, read_validation_set

pytestmark = pytest.mark.integration

ENTRY = "visdm.training:run_job"
SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 2,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "hidden": [32],
}
SEED = bytes(range(32)).hex()
TRAIN_X, TRAIN_Y = load_fashion_mnist("train", limit=120)
VAL_X, VAL_Y = load_fashion_mnist("test", limit=200)


def lying_archive(declared: tuple[int, ...], *, images: int = 20) -> bytes:
    """A validation archive whose images header declares ``declared`` but holds ``images``
    28x28 images — what np.load would believe and allocate."""
    body = io.BytesIO()
    npy_format.write_array_header_1_0(
        body, {"descr": "|u1", "fortran_order": False, "shape": declared}
    )
    body.write(VAL_X[:images].tobytes())
    labels = io.BytesIO()
    npy_format.write_array(labels, VAL_Y[:images])
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("images.npy", body.getvalue())
        archive.writestr("labels.npy", labels.getvalue())
    return out.getvalue()


def compressed_archive(shape: tuple[int, ...]) -> bytes:
    """An honest archive of zeros of ``shape``, deflated: small on disk, large when read."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("images.npy", "w", force_zip64=True) as member:
            npy_format.write_array_header_1_0(
                member, {"descr": "|u1", "fortran_order": False, "shape": shape}
            )
            row = bytes(int(np.prod(shape[1:])))
            for _ in range(shape[0]):
                member.write(row)
        labels = io.BytesIO()
        npy_format.write_array(labels, np.zeros(shape[0], dtype=np.int64))
        archive.writestr("labels.npy", labels.getvalue())
    return out.getvalue()


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def write_raw_inputs(root: Path, validation: bytes, *, corrupt: int | None = None) -> Path:
    """The node's layout: train/ with one image file per sample, samples.json, validation.npz."""
    inputs = root / "in"
    (inputs / "train").mkdir(parents=True)
    files = []
    for i, pixels in enumerate(TRAIN_X):
        data = png(pixels)
        if i == corrupt:
            data = data[: len(data) // 2]  # a truncated file
        (inputs / "train" / f"{i:06d}").write_bytes(data)
        files.append(f"{i:06d}")
    (inputs / "samples.json").write_text(
        json.dumps(
            {
                "files": files,
                "labels": TRAIN_Y.tolist(),
                "sample_ids": [f"0x{i + 1:064x}" for i in range(len(files))],
                "providers": [f"0x{(i % 3) + 1:040x}" for i in range(len(files))],
                "asset_ids": [i % 3 + 1 for i in range(len(files))],
                "rank": list(range(len(files))),
                "links": [],
            }
        )
    )
    (inputs / "validation.npz").write_bytes(validation)
    return inputs


def run(root: Path, validation: bytes, **kwargs: Any) -> tuple[Any, Path]:
    inputs = write_raw_inputs(root, validation, **kwargs)
    outputs = root / "out"
    outputs.mkdir()
    job = SandboxJob(
        job_id="raw-1",
        entry_point=ENTRY,
        input_dir=inputs,
        output_dir=outputs,
        limits=SandboxLimits(memory_bytes=6 << 30, cpu_s=600, wall_s=300),
        params={"spec": SPEC, "seed": SEED, "limits": {}, "valuation": {"k": 5}},
    )
    return run_in_sandbox(job, allowed_entry_points={ENTRY}), outputs


def test_run_job_decodes_raw_images_and_excludes_an_unreadable_one(tmp_path: Path) -> None:
    result, outputs = run(tmp_path, pack_arrays(VAL_X, VAL_Y), corrupt=7)
    assert result.status is SandboxStatus.SUCCEEDED, (result.error, result.log_tail)
    assert result.sandboxed
    value = result.return_value
    assert value is not None
    assert (value["train_samples"], value["unreadable"]) == (119, 1)
    counts = value["validation"]
    assert isinstance(counts, dict)
    assert counts["given"] == 200
    assert counts["given"] == counts["duplicates"] + counts["nearSelected"] + counts["used"]
    assert value["validation_samples"] == counts["used"] >= 100
    assert int(str(value["accuracy_bps"])) > 1000  # above chance
    valued = json.loads((outputs / "valuation.json").read_bytes())
    ids = {row["sample_id"] for row in valued["samples"]}
    assert len(ids) == 119
    assert f"0x{8:064x}" not in ids  # the truncated file (position 7) was left out


@pytest.mark.attack
def test_a_validation_header_that_lies_is_the_consumers_fault(tmp_path: Path) -> None:
    # the defence off: np.load believes the header and tries to allocate what it declares
    huge = lying_archive((10**12, 28, 28))
    with pytest.raises(MemoryError), np.load(io.BytesIO(huge)) as archive:
        archive["images"]
    # the defence on: refused from the header and the zip directory, as the consumer's fault
    with pytest.raises(InvalidInputError, match="header lies"):
        read_validation_set(huge, SPEC["input_shape"], 10)
    lie = lying_archive((90_000, 28, 28))  # within the limits, but the member holds 20
    with pytest.raises(InvalidInputError, match="header lies"):
        read_validation_set(lie, SPEC["input_shape"], 10)
    result, outputs = run(tmp_path, lie)
    assert result.status is SandboxStatus.INPUT_REJECTED, (result.error, result.log_tail)
    assert "header lies" in (result.error or "")
    assert list(outputs.iterdir()) == []


@pytest.mark.attack
def test_an_oversized_declared_shape_is_refused_before_anything_is_allocated(
    tmp_path: Path,
) -> None:
    shape = [3, 224, 224]
    over = MAX_ARRAY_BYTES // (3 * 224 * 224) + 1  # honest sizes, a few more images than fit
    archive = compressed_archive((over, 224, 224, 3))
    assert len(archive) < 20 << 20  # deflate: the archive itself is small
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError, match="over the 1,073,741,824-byte limit"):
            read_validation_set(archive, shape, 10)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < len(archive) + (4 << 20)  # the archive's directory and headers, no array
    too_many = compressed_archive((100_001, 28, 28))
    with pytest.raises(InvalidInputError, match="100,001 samples, over the limit of 100,000"):
        read_validation_set(too_many, SPEC["input_shape"], 10)
    result, _ = run(tmp_path, too_many)
    assert result.status is SandboxStatus.INPUT_REJECTED, (result.error, result.log_tail)
    assert "over the limit of 100,000" in (result.error or "")


@pytest.mark.attack
def test_a_validation_set_of_copies_of_the_selection_is_refused(tmp_path: Path) -> None:
    copies = np.concatenate([TRAIN_X, TRAIN_X[:, :, ::-1]])
    labels = np.concatenate([TRAIN_Y, TRAIN_Y])
    result, outputs = run(tmp_path, pack_arrays(copies, labels))
    assert result.status is SandboxStatus.INPUT_REJECTED, (result.error, result.log_tail)
    assert "keeps 0 of its 240 samples" in (result.error or "")
    assert list(outputs.iterdir()) == []


_VALID = pack_arrays(VAL_X[:12], VAL_Y[:12])


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    st.lists(st.tuples(st.integers(0, len(_VALID) - 1), st.integers(0, 255)), max_size=8),
    st.integers(0, len(_VALID)),
)
def test_a_mangled_archive_reads_or_fails_with_one_line(
    edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(_VALID)
    for position, value in edits:
        data[position] = value
    try:
        images, labels = read_validation_set(bytes(data[:cut] if cut else data), [1, 28, 28], 10)
    except InvalidInputError as exc:
        assert "\n" not in str(exc)
    else:
        assert images.shape == (12, 28, 28) and labels.shape == (12,)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.binary(max_size=600))
def test_arbitrary_bytes_fail_with_one_line(data: bytes) -> None:
    with pytest.raises(InvalidInputError):
        read_validation_set(data, [1, 28, 28], 10)
