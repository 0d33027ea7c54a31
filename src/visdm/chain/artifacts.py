"""Compiled contract artifacts shipped inside the package, and the custom-error table they imply."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_utils.crypto import keccak

from visdm.errors import ArtifactError

__all__ = ["Artifact", "ErrorAbi", "build_info", "error_table", "load_artifact"]


@dataclass(frozen=True, slots=True)
class Artifact:
    """ABI and bytecode of one contract."""

    name: str
    source_name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str = ""  # the runtime code, to compare with what an address runs


@dataclass(frozen=True, slots=True)
class ErrorAbi:
    """A custom Solidity error: where it is declared, its name and its parameters."""

    contract: str
    name: str
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]


def _read_json(filename: str) -> Any:
    try:
        text = resources.files("visdm.chain").joinpath("artifacts", filename).read_text()
    except FileNotFoundError:
        raise ArtifactError(
            f"artifact {filename} is not in the package: run `make contracts`"
        ) from None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ArtifactError(
            f"artifact {filename} is corrupt ({exc}): run `make contracts`"
        ) from exc


@cache
def build_info() -> dict[str, Any]:
    """Compiler version, pins, settings and source hashes of the shipped artifacts."""
    info: dict[str, Any] = _read_json("build-info.json")
    return info


@cache
def load_artifact(name: str) -> Artifact:
    """The artifact of contract ``name``."""
    data = _read_json(f"{name}.json")
    return Artifact(
        name=data["contractName"],
        source_name=data["sourceName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data.get("deployedBytecode", ""),
    )


def _canonical_type(param: dict[str, Any]) -> str:
    kind: str = param["type"]
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@cache
def error_table() -> dict[bytes, ErrorAbi]:
    """4-byte selector → custom error, over every shipped contract."""
    table: dict[bytes, ErrorAbi] = {}
    for name in build_info()["contracts"]:
        for item in load_artifact(name).abi:
            if item.get("type") != "error":
                continue
            types = tuple(_canonical_type(p) for p in item["inputs"])
            selector = keccak(text=f"{item['name']}({','.join(types)})")[:4]
            names = tuple(p["name"] or f"arg{i}" for i, p in enumerate(item["inputs"]))
            table.setdefault(selector, ErrorAbi(name, item["name"], names, types))
    return table
