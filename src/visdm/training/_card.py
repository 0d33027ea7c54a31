"""The model card: what a consumer bought, stated by the node and checked by every reader.

A card describes one trained model in the terms a buyer cares about: the spec (architecture
and every knob, read generically from the spec document so that new knobs appear without a
change here), the samples used (how many, from how many assets and providers), the samples left
out and why, the privacy spent against the budget asked, the validation accuracy with a
confidence interval, the validation set's screen, the wall time and the library versions.

The node builds it (:func:`build_model_card`) from its own facts and the sandboxed job's, and
publishes it under ``modelCard`` in the result document. Nothing about it is committed on chain
except through the values the chain *does* hold, so readers check it (:func:`read_model_card`
for its own consistency, :func:`card_from_result` against the document and the chain):

* the accuracy is a count of validation images: ``bps = round(correct / n × 10^4)`` (half up,
  as :func:`visdm.training.train` rounds), it equals the ``accuracyBps`` on chain, and the
  interval is the one recomputed from ``correct`` and ``n``;
* ε spent is not above the budget the spec asked, and privacy is stated exactly when the spec
  asked for DP;
* the spec hashes (keccak256 of its canonical JSON) to the committed spec hash;
* the samples add up: selected = used + left out + excluded, used = the document's
  ``trainSamples``, an asset is either used or left out, never both;
* the screen adds up: given = duplicates + near-copies + used, and used = the ``n`` of the
  accuracy.

The interval is **Wilson's score interval** (Wilson 1927; Brown, Cai and DasGupta 2001 recommend
it over the Wald interval for the sizes validation sets have) at 95 %, on the number of screened
validation images, rounded outwards to basis points. The number of correct predictions is
recovered from the accuracy in basis points: exactly while the validation set has at most 10,000
images (each count then gives its own basis point), otherwise the count nearest to it.

This module imports neither torch nor the chain: the node's process, the index and the CLI all
read cards.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.crypto import keccak

from visdm.errors import InvalidInputError

__all__ = [
    "CARD_FILE",
    "CARD_VERSION",
    "CI_LEVEL",
    "CI_METHOD",
    "EXCLUSION_REASONS",
    "LEFT_OUT_REASONS",
    "AssetUse",
    "ExcludedSamples",
    "LeftOutAsset",
    "ModelCard",
    "WallTime",
    "build_model_card",
    "card_from_result",
    "correct_from_bps",
    "read_model_card",
    "wilson_interval_bps",
]

CARD_VERSION = 1
#: the file ``visdm model get`` writes beside the model
CARD_FILE = "model-card.json"
CI_METHOD = "wilson"
CI_LEVEL = 0.95
#: the standard normal quantile of 0.975, for a two-sided 95 % interval
_Z = 1.959963984540054
#: why a whole selected asset was left out of the round
LEFT_OUT_REASONS: Mapping[str, str] = {
    "tally": "left the round in the tally (its owner rejected, or it was withdrawn by then)",
    "withdrawn": "withdrawn after the tally",
    "own-asset": "belongs to the consumer or to the compute node",
    "licence": "its licence refuses this consumer or purpose, or has expired",
    "dp-terms": "its licence's privacy terms refuse this spec's DP budget",
    "no-key": "no data key was wrapped for this compute node",
}
#: why single samples of an asset that took part were not trained on
EXCLUSION_REASONS: Mapping[str, str] = {
    "unlabelled": "its label is not one of the proposal's classes",
    "undecryptable": "it could not be fetched or decrypted",
    "unreadable": "it could not be decoded as an image",
}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,63}")
_MAX_ROWS = 100_000
_MAX_VERSIONS = 32
_MAX_TEXT = 500
# the sandbox's clock and the phases' clocks are read apart: allow for their rounding
_TIME_SLACK_S = 0.5
_RELATIVE_FLOAT_SLACK = 1e-9
_TRUST_HINT = "the node published a wrong model card: report it to governance"


@dataclass(frozen=True, slots=True)
class AssetUse:
    """An asset that was trained on: its owner, and how many of its samples were used."""

    asset_id: int
    provider: str
    samples: int


@dataclass(frozen=True, slots=True)
class LeftOutAsset:
    """A selected asset none of whose samples were used (``reason`` from
    :data:`LEFT_OUT_REASONS`, ``detail`` in the node's words)."""

    asset_id: int
    reason: str
    detail: str
    samples: int


@dataclass(frozen=True, slots=True)
class ExcludedSamples:
    """Samples of one asset dropped one by one (``reason`` from :data:`EXCLUSION_REASONS`)."""

    asset_id: int
    reason: str
    samples: int


@dataclass(frozen=True, slots=True)
class WallTime:
    """Seconds: the whole sandboxed job, and its training, evaluation and embedding phases."""

    job_s: float
    train_s: float
    eval_s: float
    embed_s: float


@dataclass(frozen=True, slots=True)
class ModelCard:
    """One trained model, described for its buyer. ``spec`` is the canonical spec document
    (every knob, defaults filled); ``epsilon_*``, ``delta`` and ``noise_multiplier`` are
    ``None`` without DP; accuracy figures are basis points of the screened validation set."""

    spec: Mapping[str, Any]
    spec_hash: str
    selected_samples: int
    assets: tuple[AssetUse, ...]
    left_out: tuple[LeftOutAsset, ...]
    excluded: tuple[ExcludedSamples, ...]
    accuracy_bps: int
    correct: int
    validation_samples: int
    interval_bps: tuple[int, int]
    validation: Mapping[str, int]
    wall_time: WallTime
    versions: Mapping[str, str]
    epsilon_spent: float | None = None
    epsilon_budget: float | None = None
    delta: float | None = None
    noise_multiplier: float | None = None
    ci_method: str = CI_METHOD
    ci_level: float = CI_LEVEL
    version: int = CARD_VERSION

    @property
    def architecture(self) -> str:
        return str(self.spec.get("architecture"))

    @property
    def train_samples(self) -> int:
        return sum(a.samples for a in self.assets)

    @property
    def providers(self) -> int:
        return len({a.provider.lower() for a in self.assets})

    @property
    def not_used(self) -> int:
        """Selected samples that were not trained on, whole assets and single samples."""
        return sum(a.samples for a in self.left_out) + sum(e.samples for e in self.excluded)

    def to_document(self) -> dict[str, Any]:
        """The card as the result document carries it (camelCase; the spec in its own names)."""
        privacy = None
        if self.epsilon_budget is not None:
            privacy = {
                "mechanism": "dp-sgd",
                "epsilonSpent": self.epsilon_spent,
                "epsilonBudget": self.epsilon_budget,
                "delta": self.delta,
                "noiseMultiplier": self.noise_multiplier,
            }
        return {
            "version": self.version,
            "architecture": self.architecture,
            "spec": dict(self.spec),
            "specHash": self.spec_hash,
            "samples": {
                "selected": self.selected_samples,
                "used": self.train_samples,
                "providers": self.providers,
                "assets": [
                    {"assetId": a.asset_id, "provider": a.provider, "samples": a.samples}
                    for a in self.assets
                ],
                "leftOut": [
                    {
                        "assetId": a.asset_id,
                        "reason": a.reason,
                        "detail": a.detail,
                        "samples": a.samples,
                    }
                    for a in self.left_out
                ],
                "excluded": [
                    {"assetId": e.asset_id, "reason": e.reason, "samples": e.samples}
                    for e in self.excluded
                ],
            },
            "privacy": privacy,
            "accuracy": {
                "bps": self.accuracy_bps,
                "correct": self.correct,
                "validationSamples": self.validation_samples,
                "interval": {
                    "method": self.ci_method,
                    "level": self.ci_level,
                    "lowBps": self.interval_bps[0],
                    "highBps": self.interval_bps[1],
                },
            },
            "validation": dict(self.validation),
            "wallTimeS": {
                "job": self.wall_time.job_s,
                "train": self.wall_time.train_s,
                "eval": self.wall_time.eval_s,
                "embed": self.wall_time.embed_s,
            },
            # rows, not a map keyed by library names (docs/json.md)
            "versions": [{"name": k, "version": v} for k, v in sorted(self.versions.items())],
        }

    def summary(self) -> list[str]:
        """The card for people, one fact a line."""
        knobs = ", ".join(
            f"{k}={json.dumps(v, separators=(',', ':'))}"
            for k, v in sorted(self.spec.items())
            if k not in ("architecture", "schema_version") and v is not None
        )
        low, high = self.interval_bps
        lines = [
            f"architecture  {self.architecture} ({knobs})",
            f"samples       {self.train_samples} used of {self.selected_samples} selected, from "
            f"{len(self.assets)} assets of {self.providers} providers",
            f"accuracy      {self.accuracy_bps / 100:.2f} % ({self.correct}/"
            f"{self.validation_samples} validation images; {self.ci_level:.0%} {self.ci_method} "
            f"interval {low / 100:.2f}-{high / 100:.2f} %)",
            f"validation    {self.validation.get('given')} given, "
            f"{self.validation.get('duplicates')} duplicates and "
            f"{self.validation.get('nearSelected')} near-copies of the selection dropped, "
            f"{self.validation_samples} scored",
        ]
        if self.epsilon_budget is None:
            lines.append("privacy       no differential privacy")
        else:
            lines.append(
                f"privacy       DP-SGD, epsilon {self.epsilon_spent:.3g} spent of "
                f"{self.epsilon_budget:g} asked, delta {self.delta:g}"
            )
        lines += [
            f"left out      asset {a.asset_id} ({a.samples} samples): {a.reason}, {a.detail}"
            for a in self.left_out
        ]
        lines += [
            f"excluded      {e.samples} samples of asset {e.asset_id}: {e.reason}"
            for e in self.excluded
        ]
        w = self.wall_time
        lines.append(
            f"wall time     {w.job_s:.1f} s (training {w.train_s:.1f} s, evaluation "
            f"{w.eval_s:.1f} s, embeddings {w.embed_s:.1f} s)"
        )
        lines.append(
            "versions      " + ", ".join(f"{k} {v}" for k, v in sorted(self.versions.items()))
        )
        return lines


# --- the statistics ---------------------------------------------------------------------------
def _bps(correct: int, n: int) -> int:
    # as visdm.training.train rounds: half up
    return (correct * 10_000 + n // 2) // n


def correct_from_bps(accuracy_bps: int, n: int) -> int | None:
    """The number of correct predictions out of ``n`` that rounds to ``accuracy_bps`` (the one
    nearest it when several do, ``None`` when none does)."""
    if n <= 0 or not 0 <= accuracy_bps <= 10_000:
        return None
    guess = round(accuracy_bps * n / 10_000)
    for correct in sorted(range(guess - 1, guess + 2), key=lambda c: abs(c - guess)):
        if 0 <= correct <= n and _bps(correct, n) == accuracy_bps:
            return correct
    return None


def wilson_interval_bps(correct: int, n: int) -> tuple[int, int]:
    """Wilson's 95 % score interval for ``correct`` successes in ``n`` trials, in basis points
    rounded outwards."""
    p = correct / n
    z2 = _Z * _Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    low = max(0, math.floor((centre - half) * 10_000 + 1e-9))
    high = min(10_000, math.ceil((centre + half) * 10_000 - 1e-9))
    return low, high


def _spec_hash(spec: Mapping[str, Any]) -> str:
    """keccak256 of the canonical encoding (:func:`visdm.training.canonical_spec_json`)."""
    encoded = json.dumps(
        spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()
    return "0x" + bytes(keccak(encoded)).hex()


# --- building ---------------------------------------------------------------------------------
def build_model_card(
    *,
    spec: Mapping[str, Any],
    accuracy_bps: int,
    validation: Mapping[str, int],
    epsilon_spent: float | None,
    noise_multiplier: float | None,
    assets: Sequence[AssetUse],
    left_out: Sequence[LeftOutAsset] = (),
    excluded: Sequence[ExcludedSamples] = (),
    wall_time: WallTime,
    versions: Mapping[str, str],
) -> ModelCard:
    """The card of a trained model. ``spec`` is the canonical spec document (as
    ``json.loads(canonical_spec_json(spec))``), ``validation`` the screen's counts
    (``given``, ``duplicates``, ``nearSelected``, ``used``). Raises
    :class:`~visdm.errors.InvalidInputError` for facts that cannot describe one model (the
    checks every reader applies)."""
    n = int(validation.get("used", 0))
    correct = correct_from_bps(accuracy_bps, n)
    if correct is None:
        raise InvalidInputError(
            f"accuracy {accuracy_bps} bps is no count of {n} validation images: the job's "
            "figures disagree"
        )
    dp = spec.get("dp")
    if (dp is None) != (epsilon_spent is None):
        raise InvalidInputError(
            f"the job reports ε spent {epsilon_spent} for a spec "
            + ("without differential privacy" if dp is None else "that asks for it")
        )
    card = ModelCard(
        spec=dict(spec),
        spec_hash=_spec_hash(spec),
        selected_samples=sum(a.samples for a in assets)
        + sum(a.samples for a in left_out)
        + sum(e.samples for e in excluded),
        assets=tuple(sorted(assets, key=lambda a: a.asset_id)),
        left_out=tuple(sorted(left_out, key=lambda a: a.asset_id)),
        excluded=tuple(sorted(excluded, key=lambda e: (e.asset_id, e.reason))),
        accuracy_bps=accuracy_bps,
        correct=correct,
        validation_samples=n,
        interval_bps=wilson_interval_bps(correct, n),
        validation=dict(validation),
        wall_time=wall_time,
        versions=dict(versions),
        epsilon_spent=epsilon_spent,
        epsilon_budget=None if not isinstance(dp, Mapping) else dp.get("target_epsilon"),
        delta=None if not isinstance(dp, Mapping) else dp.get("delta"),
        noise_multiplier=noise_multiplier,
    )
    # what every reader checks, checked before it is published
    return read_model_card(card.to_document(), what="the model card built")


# --- reading ----------------------------------------------------------------------------------
class _Reader:
    """Typed access to an untrusted card document; every refusal names the field."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, problem: str) -> InvalidInputError:
        return InvalidInputError(f"{self.what}: {problem}; {_TRUST_HINT}")

    def obj(self, parent: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value = parent.get(key)
        if not isinstance(value, Mapping):
            raise self.fail(f"{where}{key} must be an object, got {_kind(value)}")
        return value

    def rows(self, parent: Mapping[str, Any], key: str, where: str) -> list[Mapping[str, Any]]:
        value = parent.get(key)
        if not isinstance(value, list) or len(value) > _MAX_ROWS:
            raise self.fail(f"{where}{key} must be a list of at most {_MAX_ROWS} rows")
        if not all(isinstance(row, Mapping) for row in value):
            raise self.fail(f"{where}{key} must hold objects only")
        return value

    def count(self, parent: Mapping[str, Any], key: str, where: str = "") -> int:
        value = parent.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**53:
            raise self.fail(f"{where}{key} must be a whole number ≥ 0, got {_kind(value)}")
        return value

    def number(self, parent: Mapping[str, Any], key: str, where: str = "") -> float:
        value = parent.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}{key} must be a number, got {_kind(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer past the floats
            number = math.inf
        if not math.isfinite(number) or number < 0:
            raise self.fail(f"{where}{key} must be finite and ≥ 0, got {value!r:.40}")
        return number

    def optional_number(self, parent: Mapping[str, Any], key: str, where: str) -> float | None:
        return None if parent.get(key) is None else self.number(parent, key, where)

    def text(self, parent: Mapping[str, Any], key: str, where: str = "") -> str:
        value = parent.get(key)
        if not isinstance(value, str) or len(value) > _MAX_TEXT or not value.isprintable():
            raise self.fail(
                f"{where}{key} must be one printable line of at most {_MAX_TEXT} characters"
            )
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool | int | float):
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return type(value).__name__


def read_model_card(document: Any, *, what: str = "the model card") -> ModelCard:
    """Parse an untrusted card document and check that its figures agree with each other
    (accuracy and interval, samples, screen, privacy against the spec's budget, spec hash,
    times). Raises :class:`~visdm.errors.InvalidInputError` naming the first problem."""
    r = _Reader(what)
    if not isinstance(document, Mapping):
        raise r.fail(f"it must be an object, got {_kind(document)}")
    if document.get("version") != CARD_VERSION:
        raise r.fail(f"version must be {CARD_VERSION}, got {_kind(document.get('version'))}")
    spec = r.obj(document, "spec")
    try:
        digest = _spec_hash(spec)
    except (TypeError, ValueError):
        raise r.fail("spec is not a JSON document") from None
    if document.get("specHash") != digest:
        raise r.fail(f"specHash {document.get('specHash')!r:.70} is not its spec's hash {digest}")
    if document.get("architecture") != spec.get("architecture"):
        raise r.fail(
            f"architecture {document.get('architecture')!r:.40} is not its spec's "
            f"{spec.get('architecture')!r:.40}"
        )
    assets, left_out, excluded, selected = _samples(r, r.obj(document, "samples"))
    accuracy = r.obj(document, "accuracy")
    bps, correct, n = (
        r.count(accuracy, k, "accuracy.") for k in ("bps", "correct", "validationSamples")
    )
    if n == 0 or correct > n or _bps(correct, n) != bps:
        raise r.fail(
            f"accuracy {bps} bps is not {correct} correct of {n} validation images "
            f"(that would be {_bps(correct, n) if n > 0 else '-'} bps)"
        )
    interval = r.obj(accuracy, "interval", "accuracy.")
    if interval.get("method") != CI_METHOD or interval.get("level") != CI_LEVEL:
        raise r.fail(f"accuracy.interval must be the {CI_LEVEL:.0%} {CI_METHOD} interval")
    stated = (
        r.count(interval, "lowBps", "accuracy.interval."),
        r.count(interval, "highBps", "accuracy.interval."),
    )
    if stated != wilson_interval_bps(correct, n):
        raise r.fail(
            f"accuracy.interval {list(stated)} bps is not the {CI_METHOD} interval of "
            f"{correct}/{n}, {list(wilson_interval_bps(correct, n))}"
        )
    validation = r.obj(document, "validation")
    screen = {
        k: r.count(validation, k, "validation.")
        for k in ("given", "duplicates", "nearSelected", "used")
    }
    if screen["given"] != screen["duplicates"] + screen["nearSelected"] + screen["used"]:
        raise r.fail(
            f"validation: {screen['given']} given is not {screen['duplicates']} duplicates + "
            f"{screen['nearSelected']} near-copies + {screen['used']} used"
        )
    if screen["used"] != n:
        raise r.fail(f"accuracy is over {n} validation images, the screen kept {screen['used']}")
    spent, budget, delta, noise = _privacy(r, document.get("privacy"), spec.get("dp"))
    return ModelCard(
        spec=dict(spec),
        spec_hash=digest,
        selected_samples=selected,
        assets=assets,
        left_out=left_out,
        excluded=excluded,
        accuracy_bps=bps,
        correct=correct,
        validation_samples=n,
        interval_bps=stated,
        validation=screen,
        wall_time=_wall_time(r, r.obj(document, "wallTimeS")),
        versions=_versions(r, r.rows(document, "versions", "")),
        epsilon_spent=spent,
        epsilon_budget=budget,
        delta=delta,
        noise_multiplier=noise,
    )


def _samples(
    r: _Reader, doc: Mapping[str, Any]
) -> tuple[tuple[AssetUse, ...], tuple[LeftOutAsset, ...], tuple[ExcludedSamples, ...], int]:
    at = "samples."
    assets = tuple(
        AssetUse(
            asset_id=r.count(row, "assetId", f"{at}assets[]."),
            provider=_address(r, row.get("provider"), f"{at}assets[].provider"),
            samples=r.count(row, "samples", f"{at}assets[]."),
        )
        for row in r.rows(doc, "assets", at)
    )
    left_out = tuple(
        LeftOutAsset(
            asset_id=r.count(row, "assetId", f"{at}leftOut[]."),
            reason=_reason(r, row, LEFT_OUT_REASONS, f"{at}leftOut[]."),
            detail=r.text(row, "detail", f"{at}leftOut[]."),
            samples=r.count(row, "samples", f"{at}leftOut[]."),
        )
        for row in r.rows(doc, "leftOut", at)
    )
    excluded = tuple(
        ExcludedSamples(
            asset_id=r.count(row, "assetId", f"{at}excluded[]."),
            reason=_reason(r, row, EXCLUSION_REASONS, f"{at}excluded[]."),
            samples=r.count(row, "samples", f"{at}excluded[]."),
        )
        for row in r.rows(doc, "excluded", at)
    )
    used_ids = [a.asset_id for a in assets]
    left_ids = [a.asset_id for a in left_out]
    if len(set(used_ids)) != len(used_ids) or len(set(left_ids)) != len(left_ids):
        raise r.fail("samples: an asset is listed twice among the used or the left-out assets")
    if both := sorted(set(used_ids) & set(left_ids)):
        raise r.fail(f"samples: asset {both[0]} is listed as used and as left out")
    if any(a.samples == 0 for a in assets) or any(e.samples == 0 for e in excluded):
        raise r.fail("samples: a used asset or an exclusion counts no samples")
    if ex := sorted({e.asset_id for e in excluded} & set(left_ids)):
        raise r.fail(f"samples: asset {ex[0]} is left out whole and has samples excluded too")
    used = sum(a.samples for a in assets)
    selected = r.count(doc, "selected", at)
    not_used = sum(a.samples for a in left_out) + sum(e.samples for e in excluded)
    if selected != used + not_used:
        raise r.fail(
            f"samples: {selected} selected is not {used} used + {not_used} left out or excluded"
        )
    if r.count(doc, "used", at) != used:
        raise r.fail(f"samples.used {doc.get('used')} is not the {used} of its assets")
    if r.count(doc, "providers", at) != len({a.provider.lower() for a in assets}):
        raise r.fail("samples.providers is not the number of distinct providers of its assets")
    if used == 0:
        raise r.fail("samples: no sample was used, yet a model was trained")
    return assets, left_out, excluded, selected


_Privacy = tuple[float | None, float | None, float | None, float | None]


def _address(r: _Reader, value: Any, where: str) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise r.fail(f"{where} must be a 0x address, got {_kind(value)}")
    return value


def _reason(r: _Reader, row: Mapping[str, Any], known: Mapping[str, str], where: str) -> str:
    value = row.get("reason")
    if value not in known:
        raise r.fail(f"{where}reason must be one of {', '.join(known)}, got {_kind(value)}")
    return str(value)


def _privacy(r: _Reader, doc: Any, dp: Any) -> _Privacy:
    """ε spent, ε asked, δ and the noise multiplier; all ``None`` without DP."""
    if dp is None:
        if doc is not None:
            raise r.fail("privacy is stated, but the spec asked for no differential privacy")
        return None, None, None, None
    if not isinstance(dp, Mapping):
        raise r.fail(f"spec.dp must be an object, got {_kind(dp)}")
    if not isinstance(doc, Mapping):
        raise r.fail("privacy is missing, but the spec asked for differential privacy")
    at = "privacy."
    spent = r.number(doc, "epsilonSpent", at)
    budget = r.number(doc, "epsilonBudget", at)
    delta = r.number(doc, "delta", at)
    if budget != dp.get("target_epsilon") or delta != dp.get("delta"):
        raise r.fail(
            f"privacy: budget ε={budget:g}, δ={delta:g} is not the spec's ε="
            f"{dp.get('target_epsilon')!r:.20}, δ={dp.get('delta')!r:.20}"
        )
    if spent > budget * (1 + _RELATIVE_FLOAT_SLACK) or spent == 0:
        raise r.fail(f"privacy: ε spent {spent:g} is not within the budget (0, {budget:g}] asked")
    return spent, budget, delta, r.optional_number(doc, "noiseMultiplier", at)


def _wall_time(r: _Reader, doc: Mapping[str, Any]) -> WallTime:
    at = "wallTimeS."
    times = WallTime(*(r.number(doc, k, at) for k in ("job", "train", "eval", "embed")))
    if times.train_s + times.eval_s + times.embed_s > times.job_s + _TIME_SLACK_S:
        raise r.fail(f"wallTimeS: the phases take longer than the whole job ({times.job_s:g} s)")
    return times


def _versions(r: _Reader, rows: list[Mapping[str, Any]]) -> dict[str, str]:
    if not rows or len(rows) > _MAX_VERSIONS:
        raise r.fail(f"versions must name 1 to {_MAX_VERSIONS} libraries")
    out: dict[str, str] = {}
    for row in rows:
        name, value = row.get("name"), row.get("version")
        if not (isinstance(name, str) and _NAME.fullmatch(name) and name not in out) or not (
            isinstance(value, str) and _NAME.fullmatch(value)
        ):
            raise r.fail(f"versions: {name!r:.70} {_kind(value)} is not a library's version")
        out[name] = value
    return out


# --- the card in a result document -------------------------------------------------------------
def card_from_result(
    document: Mapping[str, Any],
    *,
    accuracy_bps: int,
    model_spec_hash: bytes | None = None,
    what: str = "the result document's model card",
) -> ModelCard | None:
    """The checked ``modelCard`` of a result document (``None`` when it has none): its own
    figures (:func:`read_model_card`), the document's (``trainSamples``, ``excludedSamples``,
    ``epsilonSpent``, ``specHash``, ``validation``), and the chain's ``accuracy_bps`` and, where
    the caller has it, ``model_spec_hash``. Raises :class:`~visdm.errors.InvalidInputError`."""
    raw = document.get("modelCard")
    if raw is None:
        return None
    card = read_model_card(raw, what=what)
    r = _Reader(what)
    if card.accuracy_bps != accuracy_bps:
        raise r.fail(f"accuracy {card.accuracy_bps} bps is not the {accuracy_bps} bps on chain")
    if model_spec_hash is not None and card.spec_hash != "0x" + model_spec_hash.hex():
        raise r.fail(
            f"its spec hashes to {card.spec_hash}, the proposal committed 0x{model_spec_hash.hex()}"
        )
    disagree = [
        f"{key} {document.get(key)!r:.70} (the card: {mine!r:.70})"
        for key, mine in (
            ("trainSamples", card.train_samples),
            ("excludedSamples", card.not_used),
            ("epsilonSpent", card.epsilon_spent),
            ("specHash", card.spec_hash),
            ("validation", dict(card.validation)),
        )
        if key in document and document[key] != mine
    ]
    if disagree:
        raise r.fail("the document disagrees with it: " + "; ".join(disagree))
    return card
