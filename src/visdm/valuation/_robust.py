"""Copy-robust valuation: collapse near-duplicates into one player, value, share, flag.

Pipeline (DESIGN section 4, "copies must not pay"):

1. **Cluster** the selection's samples by pHash links and embedding similarity
   (:func:`~visdm.valuation.find_near_duplicates`, attach-to-earliest rule).
2. **Value the players**: each cluster enters the valuation once, as its founder (earliest
   registered member: its embedding and its label). The estimator (default exact
   KNN-Shapley) never sees the copies, so copies cannot move anyone's value.
3. **Share**: a cluster's value goes to the provider that registered its founder, split equally
   among that provider's members of the cluster. Members uploaded by *other* providers are
   copies of something registered earlier and get nothing (flag ``copied``). So a provider that
   copies its own images 20 times is paid as for the originals, and a provider that copies
   someone else's image takes nothing from the original's owner.
4. **Flag**: a sample is flagged ``noisy`` (suspected label noise) only with evidence: its
   cluster's value is consistently negative over the validation points, the nearest samples of
   other providers disagree with its label, and its provider's labels disagree significantly
   more often than the market's (:mod:`visdm.valuation._evidence`). The evidence is published
   with every sample's score (:meth:`RobustValuationResult.scores`).

**Negative values earn nothing.** A provider's payout weight is ``max(0, sum of its samples'
values)`` (``negative="net"``, the default): a harmful sample earns nothing and also cancels
value that its provider's good samples earned, so uploading mislabelled data does not pay. The
alternative ``negative="clip"`` (``sum of max(0, value)``) zeroes each negative sample on its
own. Known limit of ``"net"``: a provider that *knows* which of its samples are harmful can
put them under a separate identity (sybil) and recover the ``"clip"`` payout, never more; with
``"clip"`` identities never matter, but noisy data costs its provider nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self

import numpy as np
from numpy.typing import ArrayLike, NDArray

from visdm.errors import InvalidInputError
from visdm.types import Address, SampleId
from visdm.valuation._clusters import DuplicateClusters, Mode, find_near_duplicates
from visdm.valuation._evidence import NoiseEvidence, NoiseRule, noise_evidence
from visdm.valuation._knn_shapley import KNNShapley
from visdm.valuation._payout import Payout, checksum, compute_payout
from visdm.valuation._result import ValuationResult, check_ids, check_xy

__all__ = ["CopyRobustValuation", "RobustValuationResult", "ValidationEstimator"]

Negative = Literal["net", "clip"]


class ValidationEstimator(Protocol):
    """A valuation method scored against a validation set (e.g. :class:`KNNShapley`)."""

    def fit(
        self,
        train_features: ArrayLike,
        train_labels: ArrayLike,
        val_features: ArrayLike,
        val_labels: ArrayLike,
        *,
        sample_ids: Sequence[SampleId] | None = None,
    ) -> Self: ...

    @property
    def result(self) -> ValuationResult: ...


@dataclass(frozen=True, slots=True, eq=False)
class RobustValuationResult:
    """Per-sample values after collapsing near-duplicates, with flags and the player result.

    ``values[i]`` is sample ``i``'s part of its cluster's value (0 for ``copied`` samples);
    ``values`` sums to the sum of the players' values. ``evidence`` holds the witnesses for
    every player (cluster) and ``noisy`` its verdict, given to the founder's owner's members.
    """

    sample_ids: tuple[SampleId, ...]
    providers: tuple[Address, ...]
    values: NDArray[np.float64]
    clusters: DuplicateClusters
    cluster_values: NDArray[np.float64]
    noisy: NDArray[np.bool_]
    copied: NDArray[np.bool_]
    players: ValuationResult
    evidence: NoiseEvidence
    timings: dict[str, float]

    @property
    def duplicate(self) -> NDArray[np.bool_]:
        """Samples that are not their cluster's founder."""
        is_founder = np.zeros(len(self.sample_ids), dtype=bool)
        is_founder[self.clusters.founder] = True
        return ~is_founder

    def provider_values(self, *, negative: Negative = "net") -> dict[Address, float]:
        """Each provider's payout weight before clipping at zero (see the module docstring)."""
        if negative not in ("net", "clip"):
            raise InvalidInputError(f"unknown negative rule {negative!r}: use 'net' or 'clip'")
        per_sample = self.values if negative == "net" else np.maximum(self.values, 0.0)
        out: dict[Address, float] = {}
        for provider, value in zip(self.providers, per_sample.tolist(), strict=True):
            out[provider] = out.get(provider, 0.0) + value
        return out

    def sample_counts(self) -> dict[Address, int]:
        counts: dict[Address, int] = {}
        for provider in self.providers:
            counts[provider] = counts.get(provider, 0) + 1
        return counts

    def payout(self, price: int, *, negative: Negative = "net") -> Payout:
        """Exact token amounts per provider for ``price`` (see :func:`compute_payout`)."""
        return compute_payout(
            price, self.provider_values(negative=negative), sample_counts=self.sample_counts()
        )

    def scores(self) -> list[dict[str, Any]]:
        """Per-sample scores to publish in the metadata (JSON-ready).

        A sample valued as a member of its cluster carries the cluster's ``evidence`` for the
        ``noisy`` flag (:meth:`NoiseEvidence.row`); a copy of another provider's sample has
        ``None``, since its owner's labels were never weighed.
        """
        founders = self.clusters.founder
        sizes = self.clusters.sizes()
        dup = self.duplicate
        rows = []
        for i, sid in enumerate(self.sample_ids):
            c = int(self.clusters.cluster_of[i])
            flags = [
                name
                for name, on in (
                    ("noisy", self.noisy[i]),
                    ("copied", self.copied[i]),
                    ("duplicate", dup[i]),
                )
                if on
            ]
            rows.append(
                {
                    "sample_id": "0x" + sid.hex(),
                    "provider": self.providers[i],
                    "value": float(self.values[i]),
                    "cluster_founder": "0x" + self.sample_ids[int(founders[c])].hex(),
                    "cluster_size": int(sizes[c]),
                    "flags": flags,
                    "evidence": None if self.copied[i] else self.evidence.row(c),
                }
            )
        return rows


class CopyRobustValuation:
    """Value a selection so that copies and sybils do not pay (see the module docstring).

    ::

        robust = CopyRobustValuation(KNNShapley(k=5), cosine_threshold=0.98)
        result = robust.fit(x, y, providers, x_val, y_val, links=phash_pairs).result
        payout = result.payout(price)     # exact amounts + Merkle root
    """

    def __init__(
        self,
        estimator: ValidationEstimator | None = None,
        *,
        cosine_threshold: float | None = 0.98,
        confirm_threshold: float | None = None,
        confirm_ratio: float | None = None,
        center: bool = False,
        mode: Mode = "attach",
        noise_rule: NoiseRule | None = None,
    ) -> None:
        self.estimator: ValidationEstimator = estimator if estimator is not None else KNNShapley()
        self.noise_rule = noise_rule if noise_rule is not None else NoiseRule()
        self.cosine_threshold = cosine_threshold
        self.confirm_threshold = confirm_threshold
        self.confirm_ratio = confirm_ratio
        self.center = center
        self.mode: Mode = mode
        self._result: RobustValuationResult | None = None

    def fit(
        self,
        features: ArrayLike,
        labels: ArrayLike,
        providers: Sequence[str],
        val_features: ArrayLike,
        val_labels: ArrayLike,
        *,
        sample_ids: Sequence[SampleId] | None = None,
        registration_rank: ArrayLike | None = None,
        links: Iterable[tuple[SampleId | int, SampleId | int]] = (),
    ) -> Self:
        """Cluster, value the players, share the values; see :attr:`result`.

        ``providers[i]`` owns sample ``i``. ``links`` are near-duplicate pairs from the
        metadata, as sample ids or positions; pairs naming a sample outside this selection are
        ignored (the metadata links against the whole marketplace). ``registration_rank``: lower
        is earlier (default: the position).
        """
        start = time.perf_counter()
        x, y = check_xy(features, labels, what="training")
        n = x.shape[0]
        ids = check_ids(sample_ids, n)
        if len(providers) != n:
            raise InvalidInputError(f"{len(providers)} providers for {n} samples")
        owner = tuple(checksum(p) for p in providers)
        position = {sid: i for i, sid in enumerate(ids)}
        pairs: list[tuple[int, int]] = []
        for a, b in links:
            pa = a if isinstance(a, int) else position.get(a)
            pb = b if isinstance(b, int) else position.get(b)
            if pa is None or pb is None:
                continue
            if not (0 <= pa < n and 0 <= pb < n):
                raise InvalidInputError(
                    f"link ({a!r}, {b!r}) refers to a position outside 0..{n - 1}"
                )
            pairs.append((pa, pb))
        clusters = find_near_duplicates(
            n,
            links=pairs,
            embeddings=x if self._uses_embeddings else None,
            # above 1: no link from embeddings alone
            cosine_threshold=self.cosine_threshold if self.cosine_threshold is not None else 2.0,
            confirm_threshold=self.confirm_threshold,
            confirm_ratio=self.confirm_ratio,
            center=self.center,
            registration_rank=registration_rank,
            mode=self.mode,
        )
        t_cluster = time.perf_counter()

        founders = clusters.founder
        players = self.estimator.fit(
            x[founders],
            y[founders],
            val_features,
            val_labels,
            sample_ids=[ids[int(f)] for f in founders],
        ).result
        t_value = time.perf_counter()

        cluster_values = players.values
        owner_arr = np.array(owner, dtype=object)
        evidence = noise_evidence(
            x[founders],
            y[founders],
            [owner[int(f)] for f in founders],
            cluster_values,
            players.stderr,
            rule=self.noise_rule,
            metric=str(getattr(self.estimator, "metric", "euclidean")),
        )
        t_evidence = time.perf_counter()
        founder_owner = owner_arr[founders][clusters.cluster_of]
        same_owner = owner_arr == founder_owner
        share_count = np.bincount(
            clusters.cluster_of,
            weights=same_owner.astype(np.float64),
            minlength=clusters.n_clusters,
        )
        values = np.where(
            same_owner, cluster_values[clusters.cluster_of] / share_count[clusters.cluster_of], 0.0
        )
        noisy = evidence.noisy[clusters.cluster_of] & same_owner
        copied = ~same_owner
        end = time.perf_counter()
        self._result = RobustValuationResult(
            sample_ids=ids,
            providers=owner,
            values=values.astype(np.float64),
            clusters=clusters,
            cluster_values=cluster_values,
            noisy=noisy,
            copied=copied,
            players=players,
            evidence=evidence,
            timings={
                "clustering": t_cluster - start,
                "valuation": t_value - t_cluster,
                "evidence": t_evidence - t_value,
                "sharing": end - t_evidence,
                "total": end - start,
            },
        )
        return self

    @property
    def _uses_embeddings(self) -> bool:
        return any(
            v is not None
            for v in (self.cosine_threshold, self.confirm_threshold, self.confirm_ratio)
        )

    @property
    def result(self) -> RobustValuationResult:
        """The result of the last :meth:`fit`."""
        if self._result is None:
            raise InvalidInputError("CopyRobustValuation has not been fitted: call fit(...) first")
        return self._result
