"""The NumPy port of Pillow's LANCZOS resize equals Image.resize bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from visdm.metadata._resample import lanczos_resize_stack

pytestmark = pytest.mark.unit


def _pillow(stack: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.stack(
        [
            np.asarray(Image.fromarray(a).resize((width, height), Image.Resampling.LANCZOS))
            for a in stack
        ]
    )


@pytest.mark.parametrize(
    ("h", "w"),
    [
        (28, 28),
        (32, 32),
        (256, 256),
        (1, 1),
        (1, 500),
        (500, 1),
        (33, 31),
        (100, 300),
        (300, 100),
        (512, 384),
        (17, 1000),
        (1000, 17),
        (31, 32),
        (32, 31),
        (97, 45),
        (64, 64),
    ],
)
def test_matches_pillow_on_fixed_sizes(h: int, w: int) -> None:
    rng = np.random.default_rng(h * 1000 + w)
    stack = rng.integers(0, 256, (3, h, w), dtype=np.uint8)
    stack[1] = np.where(rng.random((h, w)) < 0.5, 0, 255)  # ringing overshoots: clipping
    stack[2] = 128
    np.testing.assert_array_equal(lanczos_resize_stack(stack, 32, 32), _pillow(stack, 32, 32))


@settings(max_examples=120, deadline=None)
@given(
    h=st.integers(1, 420),
    w=st.integers(1, 420),
    out_h=st.integers(1, 64),
    out_w=st.integers(1, 64),
    seed=st.integers(0, 2**32 - 1),
)
def test_matches_pillow_on_random_sizes(h: int, w: int, out_h: int, out_w: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    stack = rng.integers(0, 256, (2, h, w), dtype=np.uint8)
    stack[1] = np.where(rng.random((h, w)) < 0.5, 0, 255)
    np.testing.assert_array_equal(
        lanczos_resize_stack(stack, out_w, out_h), _pillow(stack, out_w, out_h)
    )
