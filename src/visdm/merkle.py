"""Merkle trees that OpenZeppelin's ``MerkleProof`` verifies on chain.

A bit-exact port of ``StandardMerkleTree`` from ``@openzeppelin/merkle-tree`` 1.0.8 (the npm
package pinned in ``package.json``), so that a root and proofs made here verify with
``MerkleProof.verify`` / ``multiProofVerify`` (OpenZeppelin Contracts 5.x) and with the JS
library, and a tree dumped by either loads in the other:

* **leaf** = ``keccak256(keccak256(abi.encode(values...)))``: the double hash that Solidity
  writes as ``keccak256(bytes.concat(keccak256(abi.encode(account, amount))))``. Hashing twice
  keeps a leaf from ever being read as a 64-byte internal node (second pre-image attack).
* **internal node** = ``keccak256(min(a, b) ‖ max(a, b))`` (commutative: proofs carry no
  left/right flags).
* **shape**: the leaf hashes are sorted (bytes order) and laid out from the end of one array of
  ``2n - 1`` nodes; node ``i`` has children ``2i + 1`` and ``2i + 2``; the root is node 0.

Example (the payout tree: one ``(provider, amount)`` leaf per provider)::

    tree = StandardMerkleTree.of([(alice, 600), (bob, 400)], ["address", "uint256"])
    proof = tree.proof(0)          # list of 32-byte nodes, for MerkleProof.verify
    assert StandardMerkleTree.verify(tree.root, ["address", "uint256"], (alice, 600), proof)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_abi.exceptions import EncodingError
from eth_hash.auto import keccak

from visdm.errors import InvalidInputError

__all__ = ["MultiProof", "PositionalMerkleTree", "StandardMerkleTree", "leaf_hash", "node_hash"]

_FORMAT = "standard-v1"


def leaf_hash(leaf_encoding: Sequence[str], value: Sequence[Any]) -> bytes:
    """``keccak256(keccak256(abi.encode(value)))`` for one leaf of the given ABI types."""
    if len(value) != len(leaf_encoding):
        raise InvalidInputError(
            f"leaf {tuple(value)!r} has {len(value)} field(s), the encoding "
            f"{list(leaf_encoding)} has {len(leaf_encoding)}"
        )
    try:
        encoded = abi_encode(
            list(leaf_encoding),
            [_abi_value(t, v) for t, v in zip(leaf_encoding, value, strict=True)],
        )
    except (EncodingError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"leaf {tuple(value)!r} cannot be ABI-encoded as {list(leaf_encoding)}: {exc}"
        ) from None
    return bytes(keccak(keccak(encoded)))


def node_hash(a: bytes, b: bytes) -> bytes:
    """``keccak256`` of the two children in ascending byte order (OpenZeppelin's convention)."""
    return bytes(keccak(a + b if a <= b else b + a))


@dataclass(frozen=True, slots=True)
class MultiProof:
    """A proof for several leaves at once, for ``MerkleProof.multiProofVerify``.

    ``leaves`` are the proven values in the order the contract expects them (the order the
    proof consumes them, not the order they were asked for).
    """

    leaves: tuple[tuple[Any, ...], ...]
    proof: tuple[bytes, ...]
    proof_flags: tuple[bool, ...]


class StandardMerkleTree:
    """An OpenZeppelin ``StandardMerkleTree`` over ABI-typed leaves.

    Build one with :meth:`of`; ``values`` keep the order they were given in, and
    :meth:`proof` takes an index into that order.
    """

    __slots__ = ("_leaf_encoding", "_lookup", "_tree", "_tree_index", "_values")

    def __init__(
        self,
        tree: Sequence[bytes],
        values: Sequence[Sequence[Any]],
        tree_index: Sequence[int],
        leaf_encoding: Sequence[str],
    ) -> None:
        self._tree = tuple(tree)
        self._values = tuple(tuple(v) for v in values)
        self._tree_index = tuple(tree_index)
        self._leaf_encoding = tuple(leaf_encoding)
        self._lookup = {self._tree[t]: i for i, t in enumerate(self._tree_index)}

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def of(
        cls, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str]
    ) -> StandardMerkleTree:
        """Build the tree exactly as ``StandardMerkleTree.of(values, leafEncoding)`` does."""
        if len(values) == 0:
            raise InvalidInputError("a Merkle tree needs at least one leaf")
        hashed = sorted(
            ((leaf_hash(leaf_encoding, v), i) for i, v in enumerate(values)),
            key=lambda pair: pair[0],
        )
        n = len(hashed)
        tree: list[bytes] = [b""] * (2 * n - 1)
        tree_index = [0] * n
        for leaf_pos, (digest, value_index) in enumerate(hashed):
            tree[len(tree) - 1 - leaf_pos] = digest
            tree_index[value_index] = len(tree) - 1 - leaf_pos
        for i in range(len(tree) - 1 - n, -1, -1):
            tree[i] = node_hash(tree[2 * i + 1], tree[2 * i + 2])
        return cls(tree, values, tree_index, leaf_encoding)

    @classmethod
    def load(cls, data: dict[str, Any]) -> StandardMerkleTree:
        """Load a tree written by :meth:`dump` or by the JS library's ``tree.dump()``."""
        if data.get("format") != _FORMAT:
            raise InvalidInputError(f"unknown Merkle tree format {data.get('format')!r}")
        try:
            encoding = list(data["leafEncoding"])
            tree = [_node(h) for h in data["tree"]]
            values = [tuple(item["value"]) for item in data["values"]]
            index = [int(item["treeIndex"]) for item in data["values"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInputError(f"malformed Merkle tree dump: {exc}") from None
        loaded = cls(tree, values, index, encoding)
        loaded.validate()
        return loaded

    def dump(self) -> dict[str, Any]:
        """The JS library's ``standard-v1`` JSON shape (integers as decimal strings)."""
        return {
            "format": _FORMAT,
            "leafEncoding": list(self._leaf_encoding),
            "tree": ["0x" + h.hex() for h in self._tree],
            "values": [
                {
                    "value": [
                        _json_value(t, x) for t, x in zip(self._leaf_encoding, v, strict=True)
                    ],
                    "treeIndex": t,
                }
                for v, t in zip(self._values, self._tree_index, strict=True)
            ],
        }

    # --- reading ------------------------------------------------------------------------------
    @property
    def root(self) -> bytes:
        """The 32-byte root to commit on chain."""
        return self._tree[0]

    @property
    def leaf_encoding(self) -> tuple[str, ...]:
        return self._leaf_encoding

    @property
    def values(self) -> tuple[tuple[Any, ...], ...]:
        return self._values

    def __len__(self) -> int:
        return len(self._values)

    def index_of(self, value: Sequence[Any]) -> int:
        """The index of a leaf value (raises :class:`InvalidInputError` if it is not a leaf)."""
        digest = leaf_hash(self._leaf_encoding, value)
        try:
            return self._lookup[digest]
        except KeyError:
            raise InvalidInputError(f"{tuple(value)!r} is not a leaf of this tree") from None

    def proof(self, index: int) -> list[bytes]:
        """The sibling path for ``values[index]``, leaf to root, for ``MerkleProof.verify``."""
        node = self._tree_index[self._check_index(index)]
        proof: list[bytes] = []
        while node > 0:
            proof.append(self._tree[node - (-1) ** (node % 2)])
            node = (node - 1) // 2
        return proof

    def multiproof(self, indices: Sequence[int]) -> MultiProof:
        """A multiproof for several leaves (``getMultiProof`` in the JS library)."""
        nodes = sorted((self._tree_index[self._check_index(i)] for i in indices), reverse=True)
        if len(set(nodes)) != len(nodes):
            raise InvalidInputError("cannot prove the same leaf twice in one multiproof")
        stack = list(nodes)
        proof: list[bytes] = []
        flags: list[bool] = []
        while stack and stack[0] > 0:
            j = stack.pop(0)
            sibling = j - (-1) ** (j % 2)
            parent = (j - 1) // 2
            if stack and sibling == stack[0]:
                flags.append(True)
                stack.pop(0)
            else:
                flags.append(False)
                proof.append(self._tree[sibling])
            stack.append(parent)
        if not nodes:
            proof.append(self._tree[0])
        by_node = dict(zip(self._tree_index, self._values, strict=True))
        return MultiProof(tuple(by_node[n] for n in nodes), tuple(proof), tuple(flags))

    def validate(self) -> None:
        """Check every node and leaf; raise :class:`InvalidInputError` on the first mismatch."""
        n = len(self._tree)
        if n == 0 or len(self._values) != (n + 1) // 2:
            raise InvalidInputError("Merkle tree has the wrong number of nodes for its leaves")
        for i in range(n):
            left, right = 2 * i + 1, 2 * i + 2
            if right < n and self._tree[i] != node_hash(self._tree[left], self._tree[right]):
                raise InvalidInputError(f"Merkle tree node {i} is not the hash of its children")
            if left < n <= right:
                raise InvalidInputError(f"Merkle tree node {i} has one child")
        for value, t in zip(self._values, self._tree_index, strict=True):
            if not n // 2 <= t < n or self._tree[t] != leaf_hash(self._leaf_encoding, value):
                raise InvalidInputError(f"Merkle tree does not hold {value!r} at node {t}")

    # --- verification -------------------------------------------------------------------------
    @staticmethod
    def verify(
        root: bytes, leaf_encoding: Sequence[str], value: Sequence[Any], proof: Sequence[bytes]
    ) -> bool:
        """What ``MerkleProof.verify(proof, root, leaf)`` answers on chain."""
        node = leaf_hash(leaf_encoding, value)
        for sibling in proof:
            node = node_hash(node, sibling)
        return node == root

    @staticmethod
    def verify_multiproof(
        root: bytes, leaf_encoding: Sequence[str], multiproof: MultiProof
    ) -> bool:
        """What ``MerkleProof.multiProofVerify`` answers on chain."""
        stack = [leaf_hash(leaf_encoding, v) for v in multiproof.leaves]
        proof = list(multiproof.proof)
        if len(stack) + len(proof) != len(multiproof.proof_flags) + 1:
            return False
        for flag in multiproof.proof_flags:
            if not stack:
                return False
            a = stack.pop(0)
            if flag:
                if not stack:
                    return False
                b = stack.pop(0)
            else:
                if not proof:
                    return False
                b = proof.pop(0)
            stack.append(node_hash(a, b))
        if len(stack) + len(proof) != 1:
            return False
        return (stack[-1] if stack else proof[0]) == root

    def _check_index(self, index: int) -> int:
        if not 0 <= index < len(self._values):
            raise InvalidInputError(
                f"leaf index {index} is out of range for a tree of {len(self._values)} leaves"
            )
        return index


class PositionalMerkleTree:
    """A Merkle tree a contract can build itself, in one pass over calldata.

    Leaves are :func:`leaf_hash` of the values *in the order given* (no sorting); each level
    pairs neighbours with :func:`node_hash` and moves an odd last node up unchanged. That is
    ``TrainingMarket._assetsRoot`` (over ``(position, assetId)``); its proofs verify with
    OpenZeppelin's ``MerkleProof.verify`` because the pair hash is commutative.
    """

    def __init__(self, values: Sequence[Sequence[Any]], leaf_encoding: Sequence[str]) -> None:
        if not values:
            raise InvalidInputError("a Merkle tree needs at least one leaf")
        self.values = tuple(tuple(v) for v in values)
        self.leaf_encoding = tuple(leaf_encoding)
        level = [leaf_hash(self.leaf_encoding, v) for v in self.values]
        self._levels = [level]
        while len(level) > 1:
            pairs = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                pairs.append(level[-1])
            level = pairs
            self._levels.append(level)

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def __len__(self) -> int:
        return len(self.values)

    def proof(self, index: int) -> list[bytes]:
        """Sibling hashes from leaf ``index`` up to the root (none where a node moves up)."""
        if not 0 <= index < len(self.values):
            raise InvalidInputError(f"leaf index {index} is outside 0..{len(self.values) - 1}")
        out = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                out.append(level[sibling])
            index >>= 1
        return out


def _abi_value(abi_type: str, value: Any) -> Any:
    """Accept the JSON-friendly forms the JS library takes: decimal/hex strings and 0x bytes."""
    if (abi_type.startswith(("uint", "int"))) and isinstance(value, str):
        return int(value, 0)
    if abi_type.startswith("bytes") and isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return value


def _json_value(abi_type: str, value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and abi_type.startswith(("uint", "int")):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return value


def _node(text: str) -> bytes:
    raw = bytes.fromhex(text.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError(f"node {text!r} is not 32 bytes")
    return raw
