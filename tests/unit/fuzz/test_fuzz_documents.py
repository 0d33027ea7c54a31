"""Fuzzing the JSON documents users and peers hand ViSDM: model specs, licence files, keystores
and the node's metadata, result and score documents the index reads. Each starts from a valid
document, so that mutations reach the checks past the parser."""

from __future__ import annotations

import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.index import test_documents as seeds
from visdm.index._documents import DocumentError

from ._harness import fuzz, outcome
from ._strategies import encoded, json_values, mangled, token_spliced, with_replaced_path
from ._targets import index_documents, keystore, licence, model_spec

pytestmark = pytest.mark.unit

SPEC = {
    "architecture": "small_cnn",
    "input_shape": [1, 28, 28],
    "num_classes": 10,
    "epochs": 1,
    "batch_size": 32,
    "optimizer": "adam",
    "learning_rate": 1e-3,
    "dp": {"target_epsilon": 8.0, "delta": 1e-5, "max_grad_norm": 1.0},
}
LICENCE = {
    "purposes": ["training", "evaluation"],
    "allowed_consumers": ["0x" + "12" * 20],
    "denied_consumers": [],
    "expires": "2099-01-01T00:00:00Z",
    "dp_required": True,
    "max_epsilon": 8,
    "max_delta": None,
}


def documents(seed: Any) -> st.SearchStrategy[bytes]:
    """The seed with a field anywhere replaced or removed, then perhaps damaged as text."""
    changed = with_replaced_path(seed).map(encoded)
    return st.one_of(
        changed,
        changed.flatmap(mangled),
        st.just(json.dumps(seed)).flatmap(token_spliced),
        json_values().map(encoded),
    )


@fuzz(150)
@given(documents(SPEC))
def test_model_specs(data: bytes) -> None:
    model_spec(data)


@fuzz(120)
@given(documents(LICENCE))
def test_licence_files(data: bytes) -> None:
    licence(data)


@cache
def _keystore_seed() -> dict[str, Any]:
    from visdm.accounts import MIN_SCRYPT_N, create_account

    folder = Path(tempfile.mkdtemp(prefix="visdm-fuzz-keys-"))
    info = create_account(folder, "seed", "password", scrypt_n=MIN_SCRYPT_N)
    seed: dict[str, Any] = json.loads(info.path.read_text())
    return seed


@fuzz(120)
@given(st.data())
def test_keystores(data: st.DataObject) -> None:
    keystore(data.draw(documents(_keystore_seed())))


# --- the index's documents: a node's metadata, result and scores -----------------------------
def _index_seeds() -> list[dict[str, Any]]:
    return [seeds._metadata()[0], seeds._result(), seeds._scores()]


@fuzz(150)
@given(st.data())
def test_the_index_s_documents_from_any_byte(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(_index_seeds()))
    index_documents(data.draw(documents(seed)))


@fuzz(100)
@given(st.data())
def test_the_index_s_documents_against_the_chain_s_values(data: st.DataObject) -> None:
    """Mutated fields of documents that match everything else the chain commits, so that each
    mutation meets the check for its field."""
    kind = data.draw(st.sampled_from(["metadata", "result", "scores"]))
    errors = (DocumentError,)
    if kind == "metadata":
        doc, manifest = seeds._metadata()
        changed = data.draw(with_replaced_path(doc))
        outcome(lambda: seeds._parse_metadata(changed, manifest), errors=errors)
    elif kind == "result":
        changed = data.draw(with_replaced_path(seeds._result()))
        outcome(lambda: seeds._parse_result(changed), errors=errors)
    else:
        changed = data.draw(with_replaced_path(seeds._scores()))
        outcome(lambda: seeds._parse_scores(changed), errors=errors)
