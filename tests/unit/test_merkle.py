"""StandardMerkleTree against vectors from the pinned @openzeppelin/merkle-tree (1.0.8).

``VECTORS`` is the verbatim output of ``node tests/unit/merkle_vectors.mjs`` run from the
repository root (the script builds the same trees with the JS library, which the chain's
``MerkleProof`` is tested against upstream). Regenerate it with that command when the cases
in the script change; the leaf values below must stay in step with the script.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visdm.errors import InvalidInputError
from visdm.merkle import MultiProof, StandardMerkleTree, leaf_hash, node_hash

pytestmark = pytest.mark.unit

A = [
    "0x1111111111111111111111111111111111111111",
    "0x2222222222222222222222222222222222222222",
    "0x3333333333333333333333333333333333333333",
    "0x4444444444444444444444444444444444444444",
    "0x5555555555555555555555555555555555555555",
    "0x8ba1f109551bD432803012645Ac136ddd64DBA72",
    "0xdD2FD4581271e230360230F9337D5c0430Bf44C0",
]
MAX = 2**256 - 1
PAIR = ["address", "uint256"]
CASES: dict[str, list[tuple[Any, ...]]] = {
    "one": [(A[0], 1000)],
    "two": [(A[0], 1), (A[1], 2)],
    "three": [(A[0], 0), (A[1], MAX), (A[2], 123456789012345678901234567890)],
    "seven": [(a, 10 ** (i * 5) + i) for i, a in enumerate(A)],
    "mixed": [
        (7, A[5], bytes.fromhex("ab" * 32), True, "sample"),
        (8, A[6], bytes(32), False, ""),
        (9, A[0], bytes.fromhex("0f" * 32), True, "ViSDM \u2713"),
        (10, A[1], b"\xff" * 32, False, "a longer string that needs two words of abi data"),
    ],
}

VECTORS: dict[str, Any] = json.loads(
    r"""
{
 "one": {
  "encoding": [
   "address",
   "uint256"
  ],
  "root": "0xf62c10519787ef50d0b8b94ab8a951f39f74c5768c245b60a8c8b2a4880bb239",
  "tree": [
   "0xf62c10519787ef50d0b8b94ab8a951f39f74c5768c245b60a8c8b2a4880bb239"
  ],
  "proofs": [
   []
  ],
  "multiproof": {
   "indices": [
    0
   ],
   "proof": [],
   "proofFlags": []
  }
 },
 "two": {
  "encoding": [
   "address",
   "uint256"
  ],
  "root": "0xc483bd7f540edcc7b3ce5bbbed3993990bfa99995b9af85ba26fd87ae82073db",
  "tree": [
   "0xc483bd7f540edcc7b3ce5bbbed3993990bfa99995b9af85ba26fd87ae82073db",
   "0x60648906e1a3f55dd188e992dc24db68c6b6d455fe925705f5e110ed7889ad90",
   "0x4397c1fe255e3a9d3a85daaf9e1d39e0eeb9dc120e931f5af6d0a6f8a3315a4d"
  ],
  "proofs": [
   [
    "0x4397c1fe255e3a9d3a85daaf9e1d39e0eeb9dc120e931f5af6d0a6f8a3315a4d"
   ],
   [
    "0x60648906e1a3f55dd188e992dc24db68c6b6d455fe925705f5e110ed7889ad90"
   ]
  ],
  "multiproof": {
   "indices": [
    0
   ],
   "proof": [
    "0x4397c1fe255e3a9d3a85daaf9e1d39e0eeb9dc120e931f5af6d0a6f8a3315a4d"
   ],
   "proofFlags": [
    false
   ]
  }
 },
 "three": {
  "encoding": [
   "address",
   "uint256"
  ],
  "root": "0xd78cc78fdd6f582c445911258a0f5ad22047c508004309f621c56bb7b35b4f08",
  "tree": [
   "0xd78cc78fdd6f582c445911258a0f5ad22047c508004309f621c56bb7b35b4f08",
   "0x363ec088239814b0b55c715b75df250e9820e2d3bf5a5f2252cd61d63f341e49",
   "0xb4f09fcebabb8e5c51ff27426991329e326bf56e5214533df6457826f2463f07",
   "0xa8d86a638d2943f0179bd90fddb9389cdd07f900076957fbe23a5fbe6723a3e8",
   "0x038637e8a0f418d4415404d100e746362bff09198cf345795cce423ccd6d4c1f"
  ],
  "proofs": [
   [
    "0x363ec088239814b0b55c715b75df250e9820e2d3bf5a5f2252cd61d63f341e49"
   ],
   [
    "0xa8d86a638d2943f0179bd90fddb9389cdd07f900076957fbe23a5fbe6723a3e8",
    "0xb4f09fcebabb8e5c51ff27426991329e326bf56e5214533df6457826f2463f07"
   ],
   [
    "0x038637e8a0f418d4415404d100e746362bff09198cf345795cce423ccd6d4c1f",
    "0xb4f09fcebabb8e5c51ff27426991329e326bf56e5214533df6457826f2463f07"
   ]
  ],
  "multiproof": {
   "indices": [
    0,
    2
   ],
   "proof": [
    "0x038637e8a0f418d4415404d100e746362bff09198cf345795cce423ccd6d4c1f"
   ],
   "proofFlags": [
    false,
    true
   ]
  }
 },
 "seven": {
  "encoding": [
   "address",
   "uint256"
  ],
  "root": "0x7eb5e0a705073831ff26d43bc11207275df1708e7b1c9267ddfe1fa72a5ec598",
  "tree": [
   "0x7eb5e0a705073831ff26d43bc11207275df1708e7b1c9267ddfe1fa72a5ec598",
   "0xd3805fc75009d01c5ecb83f8915c2a8332468e2274b739ce62665bb40b331e12",
   "0x95118fea284ed452ba54a5be18986609e55dd4ecd38e03bf4d0437d5187f7f32",
   "0x8e55ba2692702d902e3be47e4a751962f6bfc1355f7b65144366d77ae5db3610",
   "0x26315649e72e1499796fd8360d774d08c11be4492c3d330815fc6cb90f40c7aa",
   "0xeb3d73c1c9e9d61d25cadebe516c2fde0fa2d84cf282348239e0fd84832c3cb9",
   "0xd678b82379a7bf341f28420e3cf88e45fc682fbd31657770bdd99d25e96c34ed",
   "0xd4f27cbd26aa5f9a697deee44759bf77ff9aaafc4ee06daab3deb19f48bff6e5",
   "0xa808da46a804dc79b1c17eee2e0a8310d808e10420573883d110f1bb673c369e",
   "0x9c4f0906375bdcbcc3128811101c93f3686c9cfdf04e63f376c233bc717b3f84",
   "0x60648906e1a3f55dd188e992dc24db68c6b6d455fe925705f5e110ed7889ad90",
   "0x15473b227201923d96c7c17d016987e4bdb0ca460320daeabbe556979d10677a",
   "0x017e5bacdc51eb16cd17873ee6253e506f7670e5ce45158fb34ffb21aa3d6f01"
  ],
  "proofs": [
   [
    "0x9c4f0906375bdcbcc3128811101c93f3686c9cfdf04e63f376c233bc717b3f84",
    "0x8e55ba2692702d902e3be47e4a751962f6bfc1355f7b65144366d77ae5db3610",
    "0x95118fea284ed452ba54a5be18986609e55dd4ecd38e03bf4d0437d5187f7f32"
   ],
   [
    "0x017e5bacdc51eb16cd17873ee6253e506f7670e5ce45158fb34ffb21aa3d6f01",
    "0xd678b82379a7bf341f28420e3cf88e45fc682fbd31657770bdd99d25e96c34ed",
    "0xd3805fc75009d01c5ecb83f8915c2a8332468e2274b739ce62665bb40b331e12"
   ],
   [
    "0x60648906e1a3f55dd188e992dc24db68c6b6d455fe925705f5e110ed7889ad90",
    "0x8e55ba2692702d902e3be47e4a751962f6bfc1355f7b65144366d77ae5db3610",
    "0x95118fea284ed452ba54a5be18986609e55dd4ecd38e03bf4d0437d5187f7f32"
   ],
   [
    "0xeb3d73c1c9e9d61d25cadebe516c2fde0fa2d84cf282348239e0fd84832c3cb9",
    "0xd3805fc75009d01c5ecb83f8915c2a8332468e2274b739ce62665bb40b331e12"
   ],
   [
    "0xa808da46a804dc79b1c17eee2e0a8310d808e10420573883d110f1bb673c369e",
    "0x26315649e72e1499796fd8360d774d08c11be4492c3d330815fc6cb90f40c7aa",
    "0x95118fea284ed452ba54a5be18986609e55dd4ecd38e03bf4d0437d5187f7f32"
   ],
   [
    "0x15473b227201923d96c7c17d016987e4bdb0ca460320daeabbe556979d10677a",
    "0xd678b82379a7bf341f28420e3cf88e45fc682fbd31657770bdd99d25e96c34ed",
    "0xd3805fc75009d01c5ecb83f8915c2a8332468e2274b739ce62665bb40b331e12"
   ],
   [
    "0xd4f27cbd26aa5f9a697deee44759bf77ff9aaafc4ee06daab3deb19f48bff6e5",
    "0x26315649e72e1499796fd8360d774d08c11be4492c3d330815fc6cb90f40c7aa",
    "0x95118fea284ed452ba54a5be18986609e55dd4ecd38e03bf4d0437d5187f7f32"
   ]
  ],
  "multiproof": {
   "indices": [
    0,
    2
   ],
   "proof": [
    "0x8e55ba2692702d902e3be47e4a751962f6bfc1355f7b65144366d77ae5db3610",
    "0x95118fea284ed452ba54a5be18986609e55dd4ecd38e03bf4d0437d5187f7f32"
   ],
   "proofFlags": [
    true,
    false,
    false
   ]
  }
 },
 "mixed": {
  "encoding": [
   "uint256",
   "address",
   "bytes32",
   "bool",
   "string"
  ],
  "root": "0x8eabc3081efa6c6cceb92941985ade841a569c0f38ce0b80908d16d7a65e54ae",
  "tree": [
   "0x8eabc3081efa6c6cceb92941985ade841a569c0f38ce0b80908d16d7a65e54ae",
   "0x69ecf0c40858ccfb9e300b4d0a87a589c478fbd407d812c53d94566ae0943c69",
   "0xdce7806835b0bd3531e7c457631c1668596dda67bc7fe0ae59903349051c2053",
   "0xf532567ed63882def9bc95e70cfddb55d9674c864e3b8a01cdc39edd831a90ce",
   "0xda696a3509af2bcb33f8c026bfe55b7c21b789e5f2abf8296df43681d55640f5",
   "0xb4fab33e262d17918fd36814fc19177eba8fb06d2251c789e00244ebd6751d30",
   "0x8671dc32ec4773cf81f862847f72e55451b4e2355ab9dbf2cd75686c297a01d5"
  ],
  "proofs": [
   [
    "0x8671dc32ec4773cf81f862847f72e55451b4e2355ab9dbf2cd75686c297a01d5",
    "0x69ecf0c40858ccfb9e300b4d0a87a589c478fbd407d812c53d94566ae0943c69"
   ],
   [
    "0xf532567ed63882def9bc95e70cfddb55d9674c864e3b8a01cdc39edd831a90ce",
    "0xdce7806835b0bd3531e7c457631c1668596dda67bc7fe0ae59903349051c2053"
   ],
   [
    "0xb4fab33e262d17918fd36814fc19177eba8fb06d2251c789e00244ebd6751d30",
    "0x69ecf0c40858ccfb9e300b4d0a87a589c478fbd407d812c53d94566ae0943c69"
   ],
   [
    "0xda696a3509af2bcb33f8c026bfe55b7c21b789e5f2abf8296df43681d55640f5",
    "0xdce7806835b0bd3531e7c457631c1668596dda67bc7fe0ae59903349051c2053"
   ]
  ],
  "multiproof": {
   "indices": [
    0,
    2
   ],
   "proof": [
    "0x69ecf0c40858ccfb9e300b4d0a87a589c478fbd407d812c53d94566ae0943c69"
   ],
   "proofFlags": [
    true,
    false
   ]
  }
 }
}
"""
)


def _hex(nodes: list[bytes] | tuple[bytes, ...]) -> list[str]:
    return ["0x" + n.hex() for n in nodes]


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_openzeppelin_js(name: str) -> None:
    vec = VECTORS[name]
    tree = StandardMerkleTree.of(CASES[name], vec["encoding"])
    assert "0x" + tree.root.hex() == vec["root"]
    assert tree.dump()["tree"] == vec["tree"]
    for i, value in enumerate(CASES[name]):
        proof = tree.proof(i)
        assert _hex(proof) == vec["proofs"][i]
        assert StandardMerkleTree.verify(tree.root, vec["encoding"], value, proof)
        assert tree.index_of(value) == i
    multi = tree.multiproof(vec["multiproof"]["indices"])
    assert _hex(multi.proof) == vec["multiproof"]["proof"]
    assert list(multi.proof_flags) == vec["multiproof"]["proofFlags"]
    assert StandardMerkleTree.verify_multiproof(tree.root, vec["encoding"], multi)


def test_solidity_leaf_formula() -> None:
    """keccak256(bytes.concat(keccak256(abi.encode(account, amount)))), spelled out."""
    from eth_abi.abi import encode
    from eth_hash.auto import keccak

    inner = keccak(encode(PAIR, [A[0], 1000]))
    assert leaf_hash(PAIR, (A[0], 1000)) == keccak(inner)
    a, b = keccak(b"a"), keccak(b"b")
    assert node_hash(a, b) == node_hash(b, a) == keccak(min(a, b) + max(a, b))


def test_dump_load_round_trip_and_tamper() -> None:
    tree = StandardMerkleTree.of(CASES["three"], PAIR)
    data = json.loads(json.dumps(tree.dump()))
    assert data["values"][1]["value"] == [A[1], str(MAX)]
    loaded = StandardMerkleTree.load(data)
    assert loaded.root == tree.root
    assert loaded.proof(1) == tree.proof(1)
    data["values"][0]["value"][1] = "1"
    with pytest.raises(InvalidInputError, match="does not hold"):
        StandardMerkleTree.load(data)
    bad = tree.dump()
    bad["tree"][0] = "0x" + "00" * 32
    with pytest.raises(InvalidInputError, match="node 0"):
        StandardMerkleTree.load(bad)
    with pytest.raises(InvalidInputError, match="format"):
        StandardMerkleTree.load({"format": "simple-v1"})
    with pytest.raises(InvalidInputError, match="malformed"):
        StandardMerkleTree.load({"format": "standard-v1", "tree": ["0x00"]})


def test_negative_paths() -> None:
    tree = StandardMerkleTree.of(CASES["seven"], PAIR)
    proof = tree.proof(3)
    assert not StandardMerkleTree.verify(tree.root, PAIR, (A[3], 1), proof)
    assert not StandardMerkleTree.verify(tree.root, PAIR, CASES["seven"][3], proof[:-1])
    assert not StandardMerkleTree.verify(tree.root, PAIR, CASES["seven"][4], proof)
    with pytest.raises(InvalidInputError, match="at least one leaf"):
        StandardMerkleTree.of([], PAIR)
    with pytest.raises(InvalidInputError, match="out of range"):
        tree.proof(7)
    with pytest.raises(InvalidInputError, match="not a leaf"):
        tree.index_of((A[0], 5))
    with pytest.raises(InvalidInputError, match="field"):
        StandardMerkleTree.of([(A[0],)], PAIR)
    with pytest.raises(InvalidInputError, match="ABI-encoded"):
        StandardMerkleTree.of([(A[0], -1)], PAIR)
    with pytest.raises(InvalidInputError, match="ABI-encoded"):
        StandardMerkleTree.of([(A[0], 2**256)], PAIR)
    with pytest.raises(InvalidInputError, match="twice"):
        tree.multiproof([1, 1])
    multi = tree.multiproof([0, 5, 6])
    forged = MultiProof(multi.leaves, multi.proof[:-1], multi.proof_flags)
    assert not StandardMerkleTree.verify_multiproof(tree.root, PAIR, forged)
    flipped = MultiProof(multi.leaves, multi.proof, tuple(not f for f in multi.proof_flags))
    assert not StandardMerkleTree.verify_multiproof(tree.root, PAIR, flipped)


@settings(max_examples=40, deadline=None)
@given(
    amounts=st.lists(st.integers(min_value=0, max_value=MAX), min_size=1, max_size=40),
    data=st.data(),
)
def test_every_proof_verifies(amounts: list[int], data: st.DataObject) -> None:
    values = [(f"0x{i + 1:040x}", amount) for i, amount in enumerate(amounts)]
    tree = StandardMerkleTree.of(values, PAIR)
    for i, value in enumerate(values):
        assert StandardMerkleTree.verify(tree.root, PAIR, value, tree.proof(i))
    subset = data.draw(st.sets(st.integers(0, len(values) - 1)))
    multi = tree.multiproof(sorted(subset))
    assert sorted(multi.leaves) == sorted(values[i] for i in subset)
    assert StandardMerkleTree.verify_multiproof(tree.root, PAIR, multi)
