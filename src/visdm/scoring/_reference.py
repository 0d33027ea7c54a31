"""The public reference a scoring round values samples against, chosen by governance.

A training round values samples against its consumer's validation set; a scoring round has no
consumer, so governance publishes a **reference document** instead, and the pool commits its
keccak256 (``ScoringPool.setReference``; the CID is emitted). It names:

* ``validation`` — the labelled images the samples are scored on: for Fashion-MNIST-like
  labels, a public split (the Fashion-MNIST test split, :mod:`visdm.datasets`), stored as the
  archive the training job reads (:func:`visdm.proposals.pack_arrays`) with its keccak256;
* ``anchors`` — public labelled images trained and valued beside every batch and then dropped.
  KNN-Shapley values depend on the other players, so without them a batch of 40 samples would
  be valued in a world of 40; with them every batch is valued in the same public world, which
  is what makes the scores of two batches (and of training rounds, see
  :func:`~visdm.scoring.relative_value`) comparable;
* ``classes`` — the label names, in class-index order (samples with other labels are not
  scored), the declarative model ``spec`` the job trains, and the ``valuation`` settings.

Every node fetches the same bytes by CID and checks them against the hashes, so a batch can be
re-executed by another node from the chain alone (given the job's seed).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError
from visdm.jsonsafe import load_untrusted_object
from visdm.storage import ContentStore

__all__ = [
    "DEFAULT_SCORING_SPEC",
    "REFERENCE_KIND",
    "BlobRef",
    "InvalidReferenceError",
    "ScoringReference",
    "build_reference",
    "fashion_mnist_classes",
    "fetch_blob",
    "load_reference",
    "parse_reference",
]

REFERENCE_KIND = "visdm-scoring-reference"
#: the reference document is a few KiB; its archives are bounded like a validation set
_MAX_REFERENCE_BYTES = 1 << 20
_MAX_BLOB_BYTES = (1 << 30) + 1024

#: a small, quick model: scoring ranks samples, the model is never delivered to anyone
DEFAULT_SCORING_SPEC: dict[str, Any] = {
    "architecture": "mlp",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 3,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 0.003,
    "hidden": [64],
}


class InvalidReferenceError(InvalidInputError):
    """A reference document or archive that does not match what the chain commits."""


@dataclass(frozen=True, slots=True)
class BlobRef:
    """An archive of the reference: where it is, its keccak256, how many images, whence."""

    cid: str
    hash: bytes
    samples: int
    source: str

    def to_json(self) -> dict[str, Any]:
        return {
            "cid": self.cid,
            "hash": "0x" + self.hash.hex(),
            "samples": self.samples,
            "source": self.source,
        }


@dataclass(frozen=True, slots=True)
class ScoringReference:
    """A parsed, verified reference document."""

    classes: tuple[str, ...]
    spec: Mapping[str, Any]
    valuation: Mapping[str, Any]
    validation: BlobRef
    anchors: BlobRef
    #: keccak256 of the document's bytes: what ``ScoringPool`` commits
    reference_hash: bytes
    cid: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "referenceHash": "0x" + self.reference_hash.hex(),
            "cid": self.cid,
            "classes": list(self.classes),
            "spec": dict(self.spec),
            "valuation": dict(self.valuation),
            "validation": self.validation.to_json(),
            "anchors": self.anchors.to_json(),
        }


def fashion_mnist_classes() -> tuple[str, ...]:
    """Fashion-MNIST's classes as label names (``t-shirt-top``, ``trouser``, …, ``ankle-boot``),
    the names :func:`visdm.datasets.export_fashion_mnist` writes."""
    from visdm.datasets import FASHION_MNIST_CLASSES

    return tuple(c.lower().replace("/", "-").replace(" ", "-") for c in FASHION_MNIST_CLASSES)


def build_reference(
    store: ContentStore,
    *,
    classes: Sequence[str] | None = None,
    validation_samples: int = 500,
    anchor_samples: int = 500,
    spec: Mapping[str, Any] | None = None,
    k: int = 5,
) -> tuple[ScoringReference, bytes]:
    """Build a Fashion-MNIST reference from the public test split: the first
    ``validation_samples`` images score, the next ``anchor_samples`` are anchors. Stores and
    pins both archives and the document; returns the reference and the document's bytes."""
    from visdm.datasets import load_fashion_mnist
    from visdm.proposals import pack_arrays

    names = tuple(classes) if classes is not None else fashion_mnist_classes()
    for name, value, low in (
        ("validation samples", validation_samples, 10),
        ("anchor samples", anchor_samples, 1),
        ("k", k, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise InvalidInputError(f"the reference's {name} must be a whole number ≥ {low}")
    chosen_spec = dict(spec if spec is not None else DEFAULT_SCORING_SPEC)
    if len(names) != 10 or int(chosen_spec.get("num_classes", 0)) != 10:
        raise InvalidInputError(
            f"a Fashion-MNIST reference scores 10 classes; {len(names)} names were given and the "
            f"spec has {chosen_spec.get('num_classes')}"
        )
    _check_names(names)
    total = validation_samples + anchor_samples
    images, labels = load_fashion_mnist("test", limit=total)
    if len(labels) < total:
        raise InvalidInputError(
            f"the Fashion-MNIST test split has {len(labels)} images, not {total}"
        )
    val = pack_arrays(images[:validation_samples], labels[:validation_samples])
    anchors = pack_arrays(images[validation_samples:total], labels[validation_samples:total])
    doc = {
        "version": 1,
        "kind": REFERENCE_KIND,
        "classes": list(names),
        "spec": chosen_spec,
        # copies are linked by the public pHash metadata only: the anchors rank first, and an
        # embedding-similarity rule on the small scoring model took most of a newcomer's honest
        # images for copies of the anchors that look like them
        "valuation": {"k": k, "cosine_threshold": None},
        "validation": BlobRef(
            store.put(val, pin=True),
            keccak(val),
            validation_samples,
            f"fashion-mnist test 0..{validation_samples - 1}",
        ).to_json(),
        "anchors": BlobRef(
            store.put(anchors, pin=True),
            keccak(anchors),
            anchor_samples,
            f"fashion-mnist test {validation_samples}..{total - 1}",
        ).to_json(),
    }
    raw = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    cid = store.put(raw, pin=True)
    reference = parse_reference(raw, expected_hash=keccak(raw))
    return _with_cid(reference, cid), raw


def _with_cid(reference: ScoringReference, cid: str) -> ScoringReference:
    return ScoringReference(
        reference.classes,
        reference.spec,
        reference.valuation,
        reference.validation,
        reference.anchors,
        reference.reference_hash,
        cid,
    )


def _check_names(names: Sequence[str]) -> None:
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n.strip() for n in names):
        raise InvalidInputError("the reference's class names must be distinct, non-empty text")


def _blob(data: Any, key: str) -> BlobRef:
    try:
        raw_hash = str(data["hash"])
        digest = bytes.fromhex(raw_hash.removeprefix("0x"))
        samples = data["samples"]
        if len(digest) != 32 or isinstance(samples, bool) or not isinstance(samples, int):
            raise ValueError("hash or samples malformed")
        if samples < 1:
            raise ValueError("no samples")
        return BlobRef(str(data["cid"]), digest, samples, str(data.get("source", "")))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidReferenceError(f"the reference's {key} entry is unusable ({exc})") from None


def parse_reference(raw: bytes, *, expected_hash: bytes) -> ScoringReference:
    """The reference document ``raw``, checked against the hash the pool commits."""
    if keccak(raw) != expected_hash:
        raise InvalidReferenceError(
            f"the reference document hashes to 0x{keccak(raw).hex()}, the pool commits "
            f"0x{expected_hash.hex()}: the store returned another document"
        )
    data = load_untrusted_object(
        raw,
        what="the scoring reference document",
        max_bytes=_MAX_REFERENCE_BYTES,
        error=InvalidReferenceError,
        hint="governance published a broken reference; ask it to publish another",
    )
    if data.get("kind") != REFERENCE_KIND or data.get("version") != 1:
        raise InvalidReferenceError(f"the document is not a version-1 {REFERENCE_KIND}")
    classes, spec, valuation = data.get("classes"), data.get("spec"), data.get("valuation")
    if not isinstance(classes, list) or not isinstance(spec, dict):
        raise InvalidReferenceError("the reference needs a list of classes and a model spec")
    if not isinstance(valuation, dict):
        raise InvalidReferenceError("the reference's valuation settings must be an object")
    try:
        _check_names(classes)
    except InvalidInputError as exc:
        raise InvalidReferenceError(str(exc)) from None
    return ScoringReference(
        tuple(classes),
        spec,
        valuation,
        _blob(data.get("validation"), "validation"),
        _blob(data.get("anchors"), "anchors"),
        expected_hash,
    )


def load_reference(store: ContentStore, cid: str, expected_hash: bytes) -> ScoringReference:
    """Fetch the reference document ``cid`` and check it against ``expected_hash``."""
    raw = store.get(cid, max_bytes=_MAX_REFERENCE_BYTES)
    return _with_cid(parse_reference(raw, expected_hash=expected_hash), cid)


def fetch_blob(store: ContentStore, blob: BlobRef) -> bytes:
    """One of the reference's archives, checked against its hash (not opened: the sandboxed
    job reads it)."""
    data = store.get(blob.cid, max_bytes=_MAX_BLOB_BYTES)
    if keccak(data) != blob.hash:
        raise InvalidReferenceError(
            f"the reference archive {blob.cid} does not hash to 0x{blob.hash.hex()}: the store "
            "returned other bytes"
        )
    return data
