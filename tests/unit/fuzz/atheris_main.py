"""Coverage-guided fuzzing of the same targets with Atheris (libFuzzer), for long runs.

The Hypothesis suite beside this file is what CI runs. Atheris installs from PyPI as a wheel for
this Python, but it is not a project dependency; to run it::

    .venv/bin/pip install atheris
    .venv/bin/python -m tests.unit.fuzz.atheris_main TARGET [CORPUS_DIR] [-max_total_time=600]

``TARGET`` is one of the names in :data:`._targets.TARGETS` (``json``, ``spec``, ``licence``,
``keystore``, ``labels``, ``image``, ``manifest``, ``proposal``, ``archive``, ``documents``,
``body``). A corpus directory given first is seeded with the valid documents the Hypothesis
tests start from, so that the fuzzer begins past the parsers' first checks. A finding is an
input on which the target failed its oracle (an exception other than the documented one, a
message on more than one line, a hang) or crashed the process: libFuzzer saves it as
``crash-<sha1>``; replay it with ``.venv/bin/python -m tests.unit.fuzz.atheris_main TARGET
crash-<sha1>``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ._targets import TARGETS


def _seeds() -> dict[str, Callable[[], list[bytes]]]:
    from .test_fuzz_documents import LICENCE, SPEC, _index_seeds, _keystore_seed
    from .test_fuzz_http import REQUEST
    from .test_fuzz_images import seeds as images
    from .test_fuzz_xml import manifest_seed, proposal_seed

    def encoded(*documents: object) -> list[bytes]:
        return [json.dumps(d).encode() for d in documents]

    return {
        "json": lambda: encoded(SPEC, LICENCE, REQUEST),
        "spec": lambda: encoded(SPEC),
        "licence": lambda: encoded(LICENCE),
        "keystore": lambda: encoded(_keystore_seed()),
        "labels": lambda: [b"filename,label\na.png,cat\ndir/b.png,dog\n"],
        "image": lambda: list(images()),
        "manifest": lambda: [manifest_seed()],
        "proposal": lambda: [proposal_seed()],
        "archive": lambda: [_archive_seed()],
        "documents": lambda: encoded(*_index_seeds()),
        "body": lambda: encoded(REQUEST),
    }


def _archive_seed() -> bytes:
    import numpy as np

    from visdm.proposals import pack_arrays

    return pack_arrays(np.zeros((4, 8, 8), dtype=np.uint8), np.arange(4))


def main(argv: list[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in TARGETS:
        raise SystemExit(f"usage: python -m tests.unit.fuzz.atheris_main {{{','.join(TARGETS)}}} …")
    import atheris

    name, rest = args[0], args[1:]
    target = TARGETS[name]
    corpus = next((Path(a) for a in rest if not a.startswith("-") and Path(a).is_dir()), None)
    for seed in _seeds()[name]():
        target(seed)  # the seeds pass, and every module the target needs is now imported
        if corpus is not None:
            (corpus / hashlib.sha1(seed).hexdigest()).write_bytes(seed)
    atheris.instrument_all()  # coverage of everything loaded: visdm, Pillow's Python, lxml's
    atheris.Setup([sys.argv[0], *rest], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
