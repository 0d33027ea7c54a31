"""Training proposals (design 3.3 step 2): the signed XML document a consumer publishes.

* :class:`TrainingProposal` / :func:`write_proposal` / :func:`parse_proposal` /
  :func:`sign_proposal` / :func:`verify_proposal`: the document, hardened parsing and the
  consumer's EIP-712 signature in the market's domain;
* :func:`selection_root`: the Merkle root over ``(assetId, index, sampleId)`` committed on chain;
* :func:`pack_arrays` / :func:`seal_validation_set`: the consumer's validation set, sealed to the
  compute node;
* :func:`create_proposal` (consumer) and :func:`load_checked_proposal` (node): the workflow;
  for a browser wallet, the same steps one by one: :func:`prepare_proposal`,
  :func:`proposal_typed_data` to sign, :func:`attach_proposal_signature`,
  :func:`store_signed_proposal`, then ``propose`` with :func:`proposal_terms`.
"""

from ._consumer import (
    CheckedProposal,
    CreatedProposal,
    PreparedProposal,
    create_proposal,
    load_checked_proposal,
    prepare_proposal,
    proposal_terms,
    store_signed_proposal,
    submit_proposal,
)
from ._document import (
    MAX_PROPOSAL_BYTES,
    PROPOSAL_NAMESPACE,
    ParsedProposal,
    SelectedAsset,
    TrainingProposal,
    ValidationSetRef,
    attach_proposal_signature,
    parse_proposal,
    proposal_hash,
    proposal_typed_data,
    sign_proposal,
    verify_proposal,
    write_proposal,
)
from ._feasibility import NodeTerms, node_refusals, node_terms
from ._selection import (
    SELECTION_LEAF,
    PublicAsset,
    PublicAssetCache,
    SelectedSample,
    accepted_indexes,
    asset_refusal,
    licence_refusal,
    load_public_asset,
    load_public_assets,
    resolve_selection,
    selection_root,
)
from ._validation import (
    SealedValidationSet,
    check_validation_set,
    image_to_array,
    load_labelled_directory,
    open_validation_set,
    pack_arrays,
    seal_validation_set,
    unpack_arrays,
    validation_aad,
)

__all__ = [
    "MAX_PROPOSAL_BYTES",
    "PROPOSAL_NAMESPACE",
    "SELECTION_LEAF",
    "CheckedProposal",
    "CreatedProposal",
    "NodeTerms",
    "ParsedProposal",
    "PreparedProposal",
    "PublicAsset",
    "PublicAssetCache",
    "SealedValidationSet",
    "SelectedAsset",
    "SelectedSample",
    "TrainingProposal",
    "ValidationSetRef",
    "accepted_indexes",
    "asset_refusal",
    "attach_proposal_signature",
    "check_validation_set",
    "create_proposal",
    "image_to_array",
    "licence_refusal",
    "load_checked_proposal",
    "load_labelled_directory",
    "load_public_asset",
    "load_public_assets",
    "node_refusals",
    "node_terms",
    "open_validation_set",
    "pack_arrays",
    "parse_proposal",
    "prepare_proposal",
    "proposal_hash",
    "proposal_terms",
    "proposal_typed_data",
    "resolve_selection",
    "seal_validation_set",
    "selection_root",
    "sign_proposal",
    "store_signed_proposal",
    "submit_proposal",
    "unpack_arrays",
    "validation_aad",
    "verify_proposal",
    "write_proposal",
]
