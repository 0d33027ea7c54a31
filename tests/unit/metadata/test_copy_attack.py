"""Attack: a provider re-sells flipped, rotated and cropped copies of another owner's images.

Copy-robust pay (design section 4) makes the near-duplicates of a sample one player of the
valuation, founded by the earliest registered member: a copy earns nothing of its own. That
rests on the copy being *linked* by the node's metadata stage. Before copy hashes the node
linked by pHash radius 8, which a mirror or a quarter turn defeats completely and a small crop
mostly: the reseller's copies stood as players of their own and took their share of every
price. Both are run here through the node's real path (encoded bytes, ``decode_image``,
``describe_images``, the index's ``link``) and the valuation's real clustering.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from visdm.datasets import load_fashion_mnist
from visdm.ingest import decode_image
from visdm.metadata import CopyIndex, HammingIndex, ImageMetadata, describe_images
from visdm.valuation import find_near_duplicates

pytestmark = [pytest.mark.unit, pytest.mark.attack]

_IMAGES, _ = load_fashion_mnist("train", limit=3000)
_PICKED = np.random.default_rng(31).choice(len(_IMAGES), 36, replace=False)
OWNER = [Image.fromarray(_IMAGES[i]) for i in _PICKED[:24]]  # registered first
RESELLER_OWN = [Image.fromarray(_IMAGES[i]) for i in _PICKED[24:]]

_T = Image.Transpose


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _cut(image: Image.Image, left: int, top: int, right: int, bottom: int) -> Image.Image:
    return image.crop((left, top, image.width - right, image.height - bottom))


# what the reseller does to the owner's images: a flip or a turn, a crop of up to 10 %, a tone
DISGUISES: list[Callable[[Image.Image], Image.Image]] = [
    lambda im: _cut(im.transpose(_T.FLIP_LEFT_RIGHT), 1, 0, 1, 1),
    lambda im: _cut(im.transpose(_T.ROTATE_90), 0, 2, 0, 0),
    lambda im: ImageEnhance.Contrast(im.transpose(_T.FLIP_TOP_BOTTOM)).enhance(1.4),
    lambda im: ImageEnhance.Contrast(
        _cut(im, 1, 1, 0, 0).resize(im.size, Image.Resampling.BILINEAR)
    ).enhance(0.7),
]


def _market() -> tuple[list[bytes], list[int]]:
    """Encoded samples in registration order and, per sample, the owner's image it copies
    (``-1`` for an image of its own)."""
    blobs = [_png(im) for im in OWNER]
    source = list(range(len(OWNER)))
    for k in range(12):  # twelve disguised copies of the owner's images
        original = 2 * k
        blobs.append(_png(DISGUISES[k % len(DISGUISES)](OWNER[original])))
        source.append(original)
    for im in RESELLER_OWN:
        blobs.append(_png(im))
        source.append(-1)
    return blobs, source


def _described(blobs: list[bytes]) -> list[ImageMetadata]:
    return describe_images([decode_image(b, name=f"sample {i}").image for i, b in enumerate(blobs)])


def _reseller_players(links: set[tuple[int, int]], n: int) -> int:
    """Valuation players founded by the reseller (whose samples come after the owner's)."""
    clusters = find_near_duplicates(n, links=sorted(links))
    return int(np.sum(clusters.founder >= len(OWNER)))


def test_a_resold_flipped_or_cropped_copy_is_linked_and_earns_nothing_of_its_own() -> None:
    blobs, source = _market()
    described = _described(blobs)
    n, n_owner = len(blobs), len(OWNER)
    owner_ids, reseller_ids = list(range(n_owner)), list(range(n_owner, n))
    copies = [i for i in reseller_ids if source[i] >= 0]

    # the defence: copy hashes, searched under the dihedral group, crops refined
    index: CopyIndex[int] = CopyIndex()
    index.link(owner_ids, described[:n_owner])
    found = index.link(reseller_ids, described[n_owner:])
    links = {(link.other_id, link.sample_id) for link in found}
    for copy in copies:
        assert (source[copy], copy) in links, f"copy {copy} of {source[copy]} was not linked"
    assert all(source[b] == a for a, b in links)  # no honest image linked to anything
    # the reseller founds players only for its own six images: the copies join the owner's
    assert _reseller_players(links, n) == len(RESELLER_OWN)

    # the defence off: the node's pHash radius links a copy only when no flip or turn hides it
    old: HammingIndex[int] = HammingIndex(radius=8)
    old.link(owner_ids, [int(d.phash) for d in described[:n_owner]])
    old_links = {
        (b, a) for a, b, _ in old.link(reseller_ids, [int(d.phash) for d in described[n_owner:]])
    }
    missed = [c for c in copies if (source[c], c) not in old_links]
    assert len(missed) >= 9  # all the flipped and turned ones: the attack worked
    assert _reseller_players(old_links, n) >= len(RESELLER_OWN) + 9
