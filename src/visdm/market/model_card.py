"""The model card a consumer gets with its model, checked against the chain.

The node writes the card into its result document (:mod:`visdm.training._card`); the chain
holds the accuracy and the spec hash it committed to. A card that disagrees with either is
refused, so what a consumer reads about its model is what it paid for. The CLI's ``model get``
and the demo both take the card from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from visdm.errors import InvalidInputError

if TYPE_CHECKING:
    from visdm.config import Settings
    from visdm.training._card import ModelCard


def checked_model_card(settings: Settings, proposal_id: int, *, hint: str = "") -> ModelCard | None:
    """The card of completed proposal ``proposal_id``'s result, checked against the chain;
    ``None`` when the proposal has no model yet (``get_model`` says why). Raises
    :class:`~visdm.errors.InvalidInputError` when the node published no card or a wrong one;
    ``hint`` is appended to that message (what the caller can do about it)."""
    from visdm.chain.contracts import ProposalStatus
    from visdm.market import workflow
    from visdm.session import connect_deployed
    from visdm.training._card import card_from_result

    conn = connect_deployed(settings)
    record = conn.deployment.training_market(conn.client).proposal(proposal_id)
    if record.status != ProposalStatus.COMPLETED:
        return None
    document = workflow.training_result(settings, proposal_id)
    if document is None:
        return None
    try:
        card = card_from_result(
            document,
            accuracy_bps=record.accuracy_bps,
            model_spec_hash=record.model_spec_hash,
            what=f"proposal {proposal_id}'s model card",
        )
    except InvalidInputError as exc:
        raise InvalidInputError(f"{exc}; {hint}" if hint else str(exc)) from None
    if card is None:
        raise InvalidInputError(
            f"proposal {proposal_id}'s result has no model card: its node does not say what it "
            f"trained; report it to governance{f', or {hint}' if hint else ''}"
        )
    return card
