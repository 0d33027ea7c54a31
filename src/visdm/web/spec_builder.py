"""The consumer's model-spec builder: the spec ``visdm data model-spec`` prints, sized for the
selection, checked as the chosen node will check it before it quotes (its published limits,
the market's minimum batch, its longest job) with the training cost its published price gives
— all before anything is proposed or paid.

``GET /consumer/spec`` builds from the form's choices (or checks the JSON in ``spec``) and is
readable without a session, as prices and limits are public; saved selections, which are this
data directory's own files, are offered to a session only. ``POST /consumer/spec/save`` writes
the spec to ``$VISDM_HOME/specs/NAME.json``, the file the propose form takes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from visdm.config import Settings
from visdm.errors import InvalidInputError, VisdmError
from visdm.jsonsafe import one_line

from . import _forms
from ._app import acting, current_session, redirect, render, session_settings

__all__ = ["ARCHITECTURES", "build_spec", "router", "save_spec", "specs_dir"]

router = APIRouter()

ARCHITECTURES = ("scatter_linear", "scatter_cnn", "mlp", "small_cnn", "resnet")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: a spec document is a few hundred bytes; the form's JSON is bounded well above that
MAX_SPEC_CHARS = 16 * 1024


def specs_dir(settings: Settings) -> Path:
    return Path(settings.home) / "specs"


def _choices(query: Any) -> dict[str, Any]:
    """The builder's choices from the query, each checked and named when wrong."""
    architecture = _forms.optional_text(query, "architecture") or "scatter_linear"
    if architecture not in ARCHITECTURES:
        raise InvalidInputError(
            f"the field 'architecture' must be one of {', '.join(ARCHITECTURES)}, got "
            f"{architecture[:40]!r}"
        )
    dp = _forms.optional_text(query, "dp") or "dp"
    if dp not in ("dp", "none"):
        raise InvalidInputError(f"the field 'dp' must be dp or none, got {dp[:20]!r}")
    epsilon = _forms.number(query, "epsilon")
    return {
        "architecture": architecture,
        "classes": _forms.whole(query, "classes", minimum=2) if query.get("classes") else 10,
        "channels": _forms.whole(query, "channels", minimum=1) if query.get("channels") else 1,
        "size": _forms.whole(query, "size", minimum=8) if query.get("size") else 28,
        "samples": _forms.whole(query, "samples", minimum=1) if query.get("samples") else None,
        "epochs": _forms.whole(query, "epochs", minimum=1) if query.get("epochs") else None,
        "epsilon": None if dp == "none" else (3.0 if epsilon is None else epsilon),
    }


def build_spec(choices: dict[str, Any]) -> Any:
    """The recommended spec for ``choices`` (a parsed ``ModelSpec``)."""
    from visdm.training import recommended_spec

    if choices["channels"] not in (1, 3):
        raise InvalidInputError(f"the field 'channels' must be 1 or 3, got {choices['channels']}")
    return recommended_spec(
        choices["architecture"],
        samples=choices["samples"],
        input_shape=(choices["channels"], choices["size"], choices["size"]),
        num_classes=choices["classes"],
        epsilon=choices["epsilon"],
        epochs=choices["epochs"],
    )


def _selection_samples(settings: Settings, name: str) -> int:
    from visdm.index import load_saved_search

    saved = load_saved_search(settings, name)
    return sum(len(s.sample_indexes) for s in saved.selection)


def _verdict(settings: Settings, spec: Any, node_address: str | None, samples: int) -> Any:
    """The node's design check of ``spec`` for ``samples`` samples, as the propose step runs
    it: its refusals, notes (the limits' source, the estimated cost) and the network's size."""
    from visdm.governance import compute_nodes
    from visdm.proposals import node_refusals, node_terms
    from visdm.session import connect_deployed
    from visdm.training import NodeLimits, check_design

    nodes = [n for n in compute_nodes(settings) if n.active]
    if not nodes:
        raise InvalidInputError("no active compute node is admitted: governance admits one first")
    node = next((n for n in nodes if n.address.lower() == (node_address or "").lower()), nodes[0])
    conn = connect_deployed(settings)
    params = conn.deployment.training_market(conn.client).parameters()
    terms = node_terms(node)
    refusals, notes = node_refusals(
        spec,
        node,
        samples=samples,
        min_batch_size=params.min_batch_size,
        max_training_period=params.max_training_period,
        terms=terms,
    )
    # the network's size whatever the node allows (its refusals above say what it does not)
    unbounded = NodeLimits(
        max_params=2**62,
        max_flops_per_sample=2**62,
        max_epochs=2**31,
        max_batch_size=2**31,
        max_samples=2**62,
        max_memory_bytes=2**62,
    )
    report = check_design(spec, unbounded, samples=samples)
    return {"node": node.address, "nodes": nodes, "refusals": refusals, "notes": notes,
            "report": report, "limits": terms.limits}  # fmt: skip


@router.get("/consumer/spec")
def spec_page(request: Request) -> Response:
    from visdm.index import list_saved_searches
    from visdm.training import canonical_spec_json, parse_model_spec

    session = current_session(request)
    cfg = session_settings(request, session)
    query = request.query_params
    error: str | None = None
    verdict: dict[str, Any] | None = None
    spec_json = ""
    choices: dict[str, Any] = {}
    selections = list_saved_searches(cfg) if session is not None else []
    try:
        choices = _choices(query)
        selection = _forms.optional_text(query, "selection")
        if selection is not None:
            if selection not in selections:
                raise InvalidInputError(f"no saved selection {selection[:64]!r} in this session")
            choices["samples"] = _selection_samples(cfg, selection)
        own = query.get("spec", "")
        if len(own) > MAX_SPEC_CHARS:
            raise InvalidInputError(f"the spec is over {MAX_SPEC_CHARS:,} characters")
        spec = parse_model_spec(own) if own.strip() else build_spec(choices)
        spec_json = json.dumps(json.loads(canonical_spec_json(spec)), indent=2)
        if query:  # the empty page builds the default spec without asking the chain or a node
            samples = choices["samples"] or 1000
            verdict = _verdict(cfg, spec, _forms.optional_text(query, "node"), samples)
            verdict["samples"] = samples
    except VisdmError as exc:
        error = one_line(str(exc))
    return render(
        request,
        "spec.html",
        title="Model spec",
        architectures=ARCHITECTURES,
        choices=choices,
        query=dict(query),
        selections=selections,
        spec_json=spec_json,
        verdict=verdict,
        report=asdict(verdict["report"]) if verdict and verdict["report"] else None,
        error=error,
    )


def save_spec(settings: Settings, name: str, spec_text: str, *, replace: bool) -> Path:
    """Write the checked spec ``spec_text`` as ``specs/NAME.json``; returns the file."""
    from visdm.training import canonical_spec_json, parse_model_spec

    if not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"the spec name {name[:70]!r} must be 1-64 letters, digits, '-' or '_', starting "
            "with a letter or digit"
        )
    if len(spec_text) > MAX_SPEC_CHARS:
        raise InvalidInputError(f"the spec is over {MAX_SPEC_CHARS:,} characters")
    canonical = canonical_spec_json(parse_model_spec(spec_text))
    folder = specs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    if path.exists() and not replace:
        raise InvalidInputError(f"{path} exists: tick 'replace' to write over it")
    text = json.dumps(json.loads(canonical), indent=2) + "\n"
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(text, encoding="utf-8")
    partial.replace(path)
    return path


@router.post("/consumer/spec/save")
async def save(request: Request) -> Response:
    session, form = await acting(request)
    cfg = session_settings(request, session)
    path = await run_in_threadpool(
        save_spec,
        cfg,
        _forms.text(form, "name", what="spec name"),
        _forms.text(form, "spec", what="spec"),
        replace=_forms.boolean(form, "replace"),
    )
    return redirect(
        session, "/consumer", f"model spec saved as {path}: the propose form takes that file"
    )
