"""Compile ``contracts/src`` with the pinned solcjs and write the artifacts shipped in the package.

Run as ``make contracts`` (``python -m visdm.chain.build``). It needs node and ``npm ci``; the
artifacts it writes are committed, so using the SDK needs neither. ``build-info.json`` records
the compiler, the settings and a SHA-256 of every source, which is how a test notices artifacts
that are stale against the sources.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from visdm.errors import ContractBuildError

__all__ = [
    "BUILD_INFO",
    "COMPILER_SETTINGS",
    "build",
    "compile_sources",
    "pinned_versions",
    "source_hashes",
]

BUILD_INFO = "build-info.json"

#: solc settings; part of the build info, so changing them marks the artifacts stale
COMPILER_SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "viaIR": True,
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}

_PACKAGE_DIR = Path(__file__).resolve().parent
ARTIFACTS_DIR = _PACKAGE_DIR / "artifacts"


def source_hashes(repo: Path) -> dict[str, str]:
    """SHA-256 of each Solidity source under ``contracts/src``, keyed by repo-relative path."""
    src = repo / "contracts" / "src"
    return {
        p.relative_to(repo).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(src.rglob("*.sol"))
    }


def pinned_versions(repo: Path) -> dict[str, str]:
    """The npm pins that decide the bytecode: solc and OpenZeppelin."""
    deps = json.loads((repo / "package.json").read_text())["dependencies"]
    return {"solc": deps["solc"], "@openzeppelin/contracts": deps["@openzeppelin/contracts"]}


def _compile(repo: Path, sources: dict[str, str]) -> dict[str, Any]:
    contents = {path: (repo / path).read_text() for path in sources}
    return compile_sources(repo, contents, COMPILER_SETTINGS)


def compile_sources(
    repo: Path, contents: dict[str, str], settings: dict[str, Any]
) -> dict[str, Any]:
    """solc's standard-JSON output for ``contents`` (source name → text) under ``settings``,
    compiled with the pinned solcjs in ``repo``'s node_modules; refuses with
    :class:`ContractBuildError` when the compiler is missing or a source does not compile."""
    node = shutil.which("node")
    if node is None:
        raise ContractBuildError("node is not on PATH: install Node.js, then run `make contracts`")
    if not (repo / "node_modules" / "solc").is_dir():
        raise ContractBuildError("node_modules/solc is missing: run `npm ci` first")
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in contents.items()},
        "settings": settings,
    }
    proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [node, str(repo / "contracts" / "compile.cjs")],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        check=False,
        cwd=repo,
    )
    if proc.returncode != 0:
        raise ContractBuildError(f"solcjs failed: {proc.stderr.strip()[-2000:]}")
    output: dict[str, Any] = json.loads(proc.stdout)
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        text = "\n".join(e.get("formattedMessage", e.get("message", "")) for e in errors)
        raise ContractBuildError(f"Solidity compilation failed:\n{text}")
    return output


def build(repo: Path, out_dir: Path = ARTIFACTS_DIR) -> list[str]:
    """Compile every source and rewrite ``out_dir``; return the contract names written."""
    hashes = source_hashes(repo)
    if not hashes:
        raise ContractBuildError(f"no Solidity sources under {repo / 'contracts' / 'src'}")
    output = _compile(repo, hashes)
    for warning in output.get("errors", []):
        print(warning.get("formattedMessage", "").rstrip(), file=sys.stderr)

    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*.json"):
        old.unlink()
    written: list[str] = []
    for source_name, contracts in sorted(output.get("contracts", {}).items()):
        if source_name not in hashes:
            continue  # a library imported from node_modules
        for name, data in sorted(contracts.items()):
            if not data["evm"]["bytecode"]["object"]:
                continue  # an abstract part of a contract that is written in full
            if not data["abi"]:
                continue  # a library of internal functions, compiled into its users
            if name in written:
                raise ContractBuildError(f"two contracts are named {name}: rename one")
            artifact = {
                "contractName": name,
                "sourceName": source_name,
                "abi": data["abi"],
                "bytecode": "0x" + data["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
            }
            (out_dir / f"{name}.json").write_text(json.dumps(artifact, indent=1) + "\n")
            written.append(name)
    info = {
        "compiler": output["compilerVersion"],
        "pins": pinned_versions(repo),
        "settings": COMPILER_SETTINGS,
        "sources": hashes,
        "contracts": written,
    }
    (out_dir / BUILD_INFO).write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return written


def _main() -> None:
    repo = Path.cwd()
    if not (repo / "contracts" / "src").is_dir():
        raise SystemExit("run from the repository root (contracts/src not found)")
    try:
        names = build(repo)
    except ContractBuildError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {len(names)} artifacts to {ARTIFACTS_DIR}: {', '.join(names)}")


if __name__ == "__main__":
    _main()
