"""A zero-knowledge proof that a committed model classifies k validation samples as claimed.

The circuit is the model's ONNX export for a batch of exactly k samples, compiled by ezkl
(Halo2 with KZG commitments on BN254): the weights are *fixed* columns, so they are part of the
verifying key; the quantised pixels and the quantised logits are public inputs. A proof says
"this circuit maps these public pixels to these public logits"; which circuit is the digest of
its verifying-key artifact (:attr:`ZkCircuit.vka_digest`), which the claim commits before the
samples are drawn. Anyone holding the model file rebuilds the circuit with :meth:`ZkCircuit.build`
and gets the same digest, which is what ties the digest to the committed model hash.

Steps (ezkl 23): ``gen_settings`` with small lookup tables (``decomp_base`` 256, three legs:
range checks up to 2²⁴ instead of ezkl's default 2¹⁴-row table, which alone forces 2¹⁷ rows),
``compile_circuit``, a dev SRS from ``gen_srs`` cached by size in ``srs_dir``, ``setup``, then
per proof ``gen_witness`` and ``prove``. ``gen_srs`` is for dev chains only: its toxic waste is
known to whoever ran it, who could forge proofs; production takes the SRS of a public ceremony
(ezkl's ``get_srs``, the Perpetual Powers of Tau).

The on-chain verifier is ezkl's reusable Halo2 verifier (one contract for every circuit, under
EIP-170's 24 KiB) plus the circuit's verifying-key artifact passed with each call; ezkl renders
its Solidity and ``compile_verifier`` compiles it with the repository's pinned solcjs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from eth_hash.auto import keccak
from numpy.typing import NDArray

from visdm.errors import ContractBuildError, ZkArtifactError, ZkBackendError, ZkInputError
from visdm.verify._zk_rule import FIELD_MODULUS, MAX_SAMPLES

__all__ = [
    "ZkCircuit",
    "ZkProof",
    "ZkSettings",
    "compile_verifier",
    "node_srs_dir",
    "quantise",
    "signed",
]

_VERIFIER_NAME = "Halo2VerifierReusable"


@dataclass(frozen=True)
class ZkSettings:
    """ezkl's knobs for the circuit; all of them change the verifying key.

    ``input_scale`` / ``param_scale``: fixed-point bits of pixels and weights (values are
    ``round(x·2^scale)``). Pixels in [-1, 1] at scale 4 are integers in -16..16.
    ``hashed_inputs``: each sample is its own circuit input and only its Poseidon hash is
    public (one instance per sample instead of one per pixel): the circuit hashes in rows
    (about 41 per pixel) what the verifier would otherwise pay gas for (an elliptic-curve
    multiplication per public pixel).
    """

    input_scale: int = 4
    param_scale: int = 4
    decomp_base: int = 256
    decomp_legs: int = 3
    lookup_range: int = 256
    hashed_inputs: bool = False

    def describe(self) -> dict[str, int | bool]:
        return {
            "hashed_inputs": self.hashed_inputs,
            "input_scale": self.input_scale,
            "param_scale": self.param_scale,
            "decomp_base": self.decomp_base,
            "decomp_legs": self.decomp_legs,
            "lookup_range": self.lookup_range,
        }


def node_srs_dir(node_dir: Path | str) -> Path:
    """Where a compute node caches its SRS files: ``<node dir>/zk/srs`` (``Settings.node_dir``).

    One file per circuit size, shared by every circuit of that size; ``gen_srs`` takes minutes
    at 2^17 rows and more, so it runs once per size.
    """
    return Path(node_dir) / "zk" / "srs"


def _per_sample(model: Any) -> Any:
    """``model`` applied to k separate one-sample inputs, so that each is hashed on its own."""
    from torch import nn

    class PerSample(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *samples: Any) -> tuple[Any, ...]:
            return tuple(self.model(x) for x in samples)

    return PerSample()


def _export(
    model: Any, onnx_path: Path, *, input_shape: tuple[int, int, int], k: int, hashed: bool
) -> None:
    """ONNX export of ``model`` for a batch of k (or k one-sample inputs when ``hashed``)."""
    import torch

    if hashed:
        network: Any = _per_sample(model.eval())
        examples: tuple[Any, ...] = tuple(torch.zeros((1, *input_shape)) for _ in range(k))
        names = [f"sample{i}" for i in range(k)]
        outputs = [f"logits{i}" for i in range(k)]
    else:
        network, examples = model.eval(), (torch.zeros((k, *input_shape)),)
        names, outputs = ["input"], ["logits"]
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated in favour of dynamo, which needs onnxscript
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            examples,
            str(onnx_path),
            input_names=names,
            output_names=outputs,
            dynamo=False,
            opset_version=17,
        )


def _adopt_settings(published: Path, settings_path: Path, settings: ZkSettings) -> int:
    """Copy a published settings file after checking it asks for this protocol's circuit."""
    try:
        info = json.loads(published.read_text())
        run = info["run_args"]
        logrows = int(run["logrows"])
    except OSError as exc:
        raise ZkArtifactError(f"{published}: cannot read the circuit settings ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ZkInputError(f"{published} is not ezkl circuit settings ({exc!r:.100})") from None
    inputs = run.get("input_visibility")
    if isinstance(inputs, dict) and inputs.get("Hashed", {}).get("hash_is_public") is True:
        inputs = "Hashed"  # ezkl writes {"Hashed": {"hash_is_public": true, ...}}
    run = {**run, "input_visibility": inputs}
    expected = {
        "input_visibility": "Hashed" if settings.hashed_inputs else "Public",
        "output_visibility": "Public",
        "param_visibility": "Fixed",
        "input_scale": settings.input_scale,
        "param_scale": settings.param_scale,
    }
    wrong = {key: run.get(key) for key, value in expected.items() if run.get(key) != value}
    if wrong or not 10 <= logrows <= 26:
        raise ZkInputError(
            f"{published} asks for another circuit ({wrong or {'logrows': logrows}}): a claim's "
            "circuit has fixed weights, public outputs and the protocol's scales"
        )
    settings_path.write_bytes(published.read_bytes())
    return logrows


@contextlib.contextmanager
def _no_network() -> Iterator[None]:
    """Point ezkl's HTTP client at a closed local port while it renders the verifier.

    After writing the Solidity, ezkl asks binaries.soliditylang.org for a solc to compile it
    with; offline that request fails at once when DNS fails, but where the name resolves and
    the traffic is dropped it could hang. The repository's solcjs compiles the source instead.
    """
    keys = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
    saved = {key: os.environ.get(key) for key in keys}
    for key in keys:
        os.environ[key] = "http://127.0.0.1:9"  # the discard port: refused at once
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _ezkl() -> Any:
    try:
        import ezkl
    except ImportError as exc:  # pragma: no cover - a pinned dependency
        raise ZkBackendError(f"ezkl is not installed ({exc}): pip install ezkl==23.0.5") from None
    return ezkl


def _step(name: str, call: Callable[[], Any], *, is_async: bool = False) -> Any:
    try:
        result = _run_async(call) if is_async else call()
    except ZkBackendError:
        raise
    except (RuntimeError, ValueError, OSError) as exc:
        raise ZkBackendError(f"ezkl {name} failed: {str(exc)[:300]}") from None
    if result is False:
        raise ZkBackendError(f"ezkl {name} reported failure")
    return result


def _run_async(call: Callable[[], Any]) -> Any:
    # ezkl's EVM helpers return futures that need a running event loop when they are created
    async def wrap() -> Any:
        return await call()

    return asyncio.run(wrap())


def quantise(images: NDArray[np.uint8], scale: int) -> NDArray[np.int64]:
    """Pixels as ezkl quantises them: ``x = p/127.5 − 1``, ``round(x·2^scale)`` half away
    from 0 (Rust's ``round``), as ``(N, features)`` integers."""
    from visdm.training import prepare_images

    x = prepare_images(images).reshape(len(images), -1).double().numpy() * float(2**scale)
    return (np.sign(x) * np.floor(np.abs(x) + 0.5)).astype(np.int64)


def felt(value: int) -> int:
    """A signed integer as an element of BN254's scalar field."""
    return value % FIELD_MODULUS


def signed(element: int) -> int:
    """A field element read back as a signed integer (the upper half is negative)."""
    return element - FIELD_MODULUS if element > FIELD_MODULUS // 2 else element


def _argmax(row: Sequence[int]) -> int:
    best = 0
    for j, value in enumerate(row):
        if value > row[best]:
            best = j
    return best


@dataclass(frozen=True)
class ZkProof:
    """A proof and its public inputs: k·features for the samples (each sample's quantised
    pixels, or its one Poseidon hash), then k·classes logits."""

    proof: bytes
    instances: tuple[int, ...]
    k: int
    features: int
    classes: int

    def inputs(self) -> list[list[int]]:
        """Each sample's public instances (pixels or hash) as field elements."""
        d = self.features
        return [list(self.instances[i * d : (i + 1) * d]) for i in range(self.k)]

    def logits(self) -> list[list[int]]:
        """Each sample's quantised logits, signed."""
        base, c = self.k * self.features, self.classes
        return [
            [signed(v) for v in self.instances[base + i * c : base + (i + 1) * c]]
            for i in range(self.k)
        ]

    def predictions(self) -> list[int]:
        """argmax of each sample's logits, the first on ties (as the contract takes it)."""
        return [_argmax(row) for row in self.logits()]

    def with_instances(self, instances: Sequence[int]) -> ZkProof:
        return ZkProof(self.proof, tuple(instances), self.k, self.features, self.classes)


@dataclass
class ZkCircuit:
    """One model's circuit for k samples: its files under ``workdir`` and its keys."""

    workdir: Path
    srs_path: Path
    k: int
    features: int
    classes: int
    logrows: int
    settings: ZkSettings
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def public_width(self) -> int:
        """Public instances per sample before the logits: its pixels, or its one hash."""
        return 1 if self.settings.hashed_inputs else self.features

    @property
    def settings_path(self) -> Path:
        return self.workdir / "settings.json"

    @property
    def compiled_path(self) -> Path:
        return self.workdir / "model.compiled"

    @property
    def pk_path(self) -> Path:
        return self.workdir / "pk.key"

    @property
    def vk_path(self) -> Path:
        return self.workdir / "vk.key"

    @property
    def vka_path(self) -> Path:
        return self.workdir / "vka.bin"

    @classmethod
    def build(
        cls,
        model: Any,
        *,
        input_shape: tuple[int, int, int],
        num_classes: int,
        k: int,
        workdir: Path | str,
        srs_dir: Path | str,
        settings: ZkSettings | None = None,
        published_settings: Path | str | None = None,
    ) -> ZkCircuit:
        """Export ``model`` (a zoo network in eval mode) for k samples and set up its keys.

        ezkl's ``gen_settings`` lists the circuit's parts in hash-map order, which changes the
        layout and so the verifying key from run to run; given the settings file the proving
        node published (``published_settings``), export, compile and setup are deterministic,
        so a verifier holding the committed model rebuilds the same vka digest.

        The SRS for the circuit's size is made once with ``gen_srs`` and reused from
        ``srs_dir`` (``kzg<logrows>.srs``). Raises :class:`~visdm.errors.ZkInputError` for a
        k outside 1..256, :class:`~visdm.errors.ZkBackendError` when ezkl refuses a step.
        """
        import time

        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SAMPLES:
            raise ZkInputError(f"k must be an integer in 1..{MAX_SAMPLES}, got {k!r}")
        settings = settings or ZkSettings()
        ezkl = _ezkl()
        workdir, srs_dir = Path(workdir), Path(srs_dir)
        workdir.mkdir(parents=True, exist_ok=True)
        srs_dir.mkdir(parents=True, exist_ok=True)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        onnx_path = workdir / "model.onnx"
        _export(model, onnx_path, input_shape=input_shape, k=k, hashed=settings.hashed_inputs)
        args = ezkl.PyRunArgs()
        args.input_visibility = "hashed" if settings.hashed_inputs else "public"
        args.output_visibility = "public"
        args.param_visibility = "fixed"
        args.input_scale = settings.input_scale
        args.param_scale = settings.param_scale
        args.decomp_base = settings.decomp_base
        args.decomp_legs = settings.decomp_legs
        args.lookup_range = (-settings.lookup_range, settings.lookup_range)
        settings_path = workdir / "settings.json"
        if published_settings is not None:
            logrows = _adopt_settings(Path(published_settings), settings_path, settings)
        else:
            _step(
                "gen_settings", lambda: ezkl.gen_settings(str(onnx_path), str(settings_path), args)
            )
            # PyRunArgs defaults to 2^17 rows; the circuit needs a power of two holding its
            # rows, the lookup table and Halo2's blinding rows
            info = json.loads(settings_path.read_text())
            rows = int(info["num_rows"]) + 2 * settings.lookup_range + 64
            logrows = max(rows.bit_length(), 10)
            if logrows != info["run_args"]["logrows"]:
                args.logrows = logrows
                _step(
                    "gen_settings",
                    lambda: ezkl.gen_settings(str(onnx_path), str(settings_path), args),
                )
        compiled = workdir / "model.compiled"
        _step(
            "compile_circuit",
            lambda: ezkl.compile_circuit(str(onnx_path), str(compiled), str(settings_path)),
        )
        timings["export_compile_s"] = time.perf_counter() - start
        srs_path = srs_dir / f"kzg{logrows}.srs"
        start = time.perf_counter()
        if not srs_path.exists():
            partial = srs_path.with_suffix(".partial")
            _step("gen_srs", lambda: ezkl.gen_srs(str(partial), logrows))
            partial.replace(srs_path)
        timings["srs_s"] = time.perf_counter() - start
        circuit = cls(
            workdir, srs_path, k, int(np.prod(input_shape)), num_classes, logrows, settings, timings
        )
        start = time.perf_counter()
        _step(
            "setup",
            lambda: ezkl.setup(
                str(compiled), str(circuit.vk_path), str(circuit.pk_path), str(srs_path)
            ),
        )
        _step(
            "create_evm_vka",
            lambda: ezkl.create_evm_vka(
                str(circuit.vk_path), str(settings_path), str(circuit.vka_path), str(srs_path)
            ),
            is_async=True,
        )
        timings["setup_s"] = time.perf_counter() - start
        return circuit

    def _need(self, *paths: Path) -> None:
        for path in paths:
            if not path.is_file():
                raise ZkArtifactError(
                    f"{path} is missing: rebuild the circuit with ZkCircuit.build for this model"
                )

    @property
    def proving_key_bytes(self) -> int:
        self._need(self.pk_path)
        return self.pk_path.stat().st_size

    def vka_words(self) -> list[bytes]:
        """The verifying-key artifact as the 32-byte words the reusable verifier takes."""
        self._need(self.vka_path)
        raw = self.vka_path.read_bytes()
        if len(raw) < 8:
            raise ZkArtifactError(f"{self.vka_path} is truncated: rebuild the circuit")
        count = int.from_bytes(raw[:8], "little")
        if len(raw) != 8 + 32 * count:
            raise ZkArtifactError(
                f"{self.vka_path} holds {len(raw) - 8} bytes after its header, expected "
                f"{32 * count}: rebuild the circuit"
            )
        return [raw[8 + 32 * i : 40 + 32 * i] for i in range(count)]

    @property
    def vka_digest(self) -> bytes:
        """keccak256 of the artifact's words: what a claim commits to name this circuit."""
        return bytes(keccak(b"".join(self.vka_words())))

    def public_inputs(self, images: NDArray[np.uint8]) -> list[list[int]]:
        """Each image's public instances as the proof will show them: its quantised pixels as
        field elements, or with ``hashed_inputs`` their Poseidon hash (ezkl's)."""
        rows = [[felt(int(v)) for v in row] for row in quantise(images, self.settings.input_scale)]
        if not self.settings.hashed_inputs:
            return rows
        ezkl = _ezkl()
        out = []
        for row in rows:
            words = [v.to_bytes(32, "little").hex() for v in row]
            try:
                (digest,) = ezkl.poseidon_hash(words)
            except (RuntimeError, ValueError) as exc:
                raise ZkBackendError(f"ezkl poseidon_hash failed: {str(exc)[:300]}") from None
            out.append([int.from_bytes(bytes.fromhex(digest), "little")])
        return out

    def prove(self, images: NDArray[np.uint8], *, name: str = "proof") -> ZkProof:
        """Witness and proof for exactly k images (uint8, ``N×H×W`` or ``N×H×W×C``)."""
        import time

        from visdm.training import prepare_images

        arr = np.asarray(images)
        if arr.dtype != np.uint8 or arr.ndim not in (3, 4) or len(arr) != self.k:
            raise ZkInputError(
                f"the circuit proves exactly k={self.k} uint8 images, got an array of "
                f"{arr.dtype} with shape {arr.shape}: pass the drawn samples in draw order"
            )
        if int(np.prod(arr.shape[1:])) != self.features:
            raise ZkInputError(
                f"images of shape {arr.shape[1:]} have {int(np.prod(arr.shape[1:]))} values, "
                f"the circuit takes {self.features}: use the model's input shape"
            )
        self._need(self.compiled_path, self.pk_path, self.srs_path, self.settings_path)
        ezkl = _ezkl()
        data = self.workdir / f"{name}.input.json"
        witness = self.workdir / f"{name}.witness.json"
        proof_path = self.workdir / f"{name}.json"
        x = prepare_images(arr).reshape(len(arr), -1)
        inputs = x.tolist() if self.settings.hashed_inputs else [x.reshape(-1).tolist()]
        data.write_text(json.dumps({"input_data": inputs}))
        start = time.perf_counter()
        _step(
            "gen_witness",
            lambda: ezkl.gen_witness(str(data), str(self.compiled_path), str(witness)),
        )
        _step(
            "prove",
            lambda: ezkl.prove(
                str(witness),
                str(self.compiled_path),
                str(self.pk_path),
                str(proof_path),
                str(self.srs_path),
            ),
        )
        self.timings["prove_s"] = time.perf_counter() - start
        return self.load_proof(proof_path)

    def load_proof(self, path: Path | str) -> ZkProof:
        """Read an ezkl proof file; its instances must have this circuit's layout."""
        path = Path(path)
        self._need(path)
        try:
            doc = json.loads(path.read_text())
            words = doc["instances"][0]
            instances = tuple(int.from_bytes(bytes.fromhex(w), "little") for w in words)
            proof = bytes.fromhex(doc["hex_proof"].removeprefix("0x"))
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ZkInputError(f"{path} is not an ezkl proof file ({exc!r:.120})") from None
        expected = self.k * (self.public_width + self.classes)
        if len(instances) != expected:
            raise ZkInputError(
                f"{path} has {len(instances)} public inputs, the circuit for k={self.k} has "
                f"{expected}: prove with this circuit"
            )
        return ZkProof(proof, instances, self.k, self.public_width, self.classes)

    def verify(self, proof: ZkProof, *, name: str = "check") -> bool:
        """Off-chain verification with ezkl (the proof file is rewritten from ``proof``)."""
        self._need(self.vk_path, self.srs_path, self.settings_path)
        ezkl = _ezkl()
        path = self.workdir / f"{name}.proof.json"
        path.write_text(
            json.dumps(
                {
                    "instances": [[v.to_bytes(32, "little").hex() for v in proof.instances]],
                    "proof": list(proof.proof),
                    "hex_proof": "0x" + proof.proof.hex(),
                    "transcript_type": "EVM",
                }
            )
        )
        try:
            return bool(
                ezkl.verify(
                    str(path), str(self.settings_path), str(self.vk_path), str(self.srs_path)
                )
            )
        except RuntimeError:
            return False

    def verifier_source(self) -> str:
        """ezkl's reusable Halo2 verifier in Solidity (the same for every circuit)."""
        self._need(self.vk_path, self.srs_path, self.settings_path)
        ezkl = _ezkl()
        sol = self.workdir / f"{_VERIFIER_NAME}.sol"
        abi = self.workdir / f"{_VERIFIER_NAME}.abi"
        with _no_network():
            try:
                _step(
                    "create_evm_verifier",
                    lambda: ezkl.create_evm_verifier(
                        str(self.vk_path),
                        str(self.settings_path),
                        str(sol),
                        str(abi),
                        str(self.srs_path),
                        reusable=True,
                    ),
                    is_async=True,
                )
            except ZkBackendError as exc:
                # ezkl writes the source, then fetches a solc for its ABI; that step fails here
                # and the repository's own solcjs compiles the source instead
                if not sol.is_file() or "svm" not in str(exc):
                    raise
        return sol.read_text()


def _repo_root() -> Path:
    root = Path(__file__).resolve().parents[3]
    if not (root / "contracts" / "compile.cjs").is_file():
        raise ZkArtifactError(
            f"contracts/compile.cjs is not under {root}: compile the verifier from a checkout"
        )
    return root


@functools.lru_cache(maxsize=4)
def compile_verifier(source: str) -> dict[str, Any]:
    """Compile the verifier with the pinned solcjs (``contracts/compile.cjs``).

    Returns ``{"abi", "bytecode", "deployedBytecode", "sha256"}`` (cached per source: do not
    mutate it). The settings are the shipped contracts' without ``viaIR``: the verifier is
    inline assembly already.
    """
    from visdm.chain.build import COMPILER_SETTINGS, compile_sources

    name = f"{_VERIFIER_NAME}.sol"
    settings = {k: v for k, v in COMPILER_SETTINGS.items() if k != "viaIR"}
    try:
        output = compile_sources(_repo_root(), {name: source}, settings)
    except ContractBuildError as exc:
        raise ZkBackendError(f"cannot compile the verifier: {exc}") from None
    data = output["contracts"][name][_VERIFIER_NAME]
    return {
        "abi": data["abi"],
        "bytecode": "0x" + data["evm"]["bytecode"]["object"],
        "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
        "sha256": hashlib.sha256(source.encode()).hexdigest(),
    }
