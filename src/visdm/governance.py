"""Marketplace governance: regions, compute-node admission, the market parameters and the
scoring fee (``GOVERNANCE_ROLE`` only), and finding compute nodes by address or by local
account name.

Every argument that names an account is resolved here before a transaction is built: a full
address (its EIP-55 checksum checked when it has mixed case) or the name of an account in the
local keystore. Anything else — a short address, a typo — is refused with the nodes that do
exist, so a command never reaches the chain with a wrong party.

A change of market parameters names only the fields it changes (``quorum_bps=5000``, periods
with units: ``reply_period=3d``); the rest are read from the chain. Every rule the contract
checks is checked here first, so a bad value is refused in one line that names the field
instead of as a revert of the whole struct.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from urllib.parse import urlsplit

from eth_account.signers.local import LocalAccount
from eth_utils.address import is_checksum_address, to_checksum_address

from visdm.chain.client import TxResult
from visdm.chain.contracts import ComputeNodeRecord, MarketParameters, StakeholderRegistry
from visdm.config import Settings
from visdm.errors import InvalidInputError, KeystoreNotFoundError
from visdm.session import Connection, connect_deployed
from visdm.types import Address

__all__ = [
    "MAX_ENDPOINT_CHARS",
    "PARAMETER_NAMES",
    "PERIOD_PARAMETERS",
    "ParameterChange",
    "active_node_addresses",
    "add_region",
    "admit_node",
    "apply_parameter_changes",
    "check_endpoint",
    "check_parameters",
    "compute_nodes",
    "describe_nodes",
    "format_period",
    "governance_holders",
    "holds_governance",
    "market_parameters",
    "parameter_name",
    "parameter_text",
    "parse_parameter_assignments",
    "parse_parameter_value",
    "parse_period",
    "resolve_account",
    "resolve_node",
    "scoring_fee_bps",
    "set_market_parameters",
    "set_node_suspended",
    "set_scoring_fee",
]

#: the longest endpoint admitted (it is stored on chain and fetched by every consumer)
MAX_ENDPOINT_CHARS = 512
#: nodes named in one message (the line stays readable on a market with hundreds)
_LISTED_NODES = 10
_FULL_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_HEXISH = re.compile(r"(0x)?[0-9a-fA-F]+")


def check_endpoint(endpoint: str) -> str:
    """``endpoint`` as a node API URL (``http(s)://host[:port][/path]``, no trailing slash), or
    :class:`~visdm.errors.InvalidInputError` saying what is wrong with it."""
    text = endpoint.strip()
    problem = None
    try:
        parts = urlsplit(text)
        port = parts.port  # raises on a port that is no number or out of range
    except ValueError as exc:
        problem = str(exc)
    else:
        if parts.scheme not in ("http", "https"):
            problem = f"the scheme is {parts.scheme or 'missing'}, not http or https"
        elif not parts.hostname:
            problem = "it names no host"
        elif any(c.isspace() or not c.isprintable() for c in text):
            problem = "it contains spaces or control characters"
        elif parts.username is not None or parts.password is not None:
            problem = "it carries a user name or password, which every consumer would read"
        elif parts.query or parts.fragment:
            problem = "it has a query or fragment; the node's API paths are appended to it"
        elif port == 0:
            problem = "port 0 is not a port a node listens on"
        elif len(text) > MAX_ENDPOINT_CHARS:
            problem = f"it is {len(text):,} characters long, over {MAX_ENDPOINT_CHARS}"
    if problem is not None:
        shown = text if len(text) <= 80 else text[:80] + "…"
        raise InvalidInputError(
            f"endpoint {shown!r} is not the URL of a node's API ({problem}): give "
            "http(s)://HOST[:PORT], e.g. http://127.0.0.1:8700"
        )
    return text.rstrip("/")


def resolve_account(settings: Settings, text: str, *, what: str = "account") -> Address:
    """The address ``text`` names: a full address, or an account name in the local keystore."""
    value = text.strip()
    if _FULL_ADDRESS.fullmatch(value):
        return _full_address(value, what)
    if _HEXISH.fullmatch(value) and value.startswith("0x"):
        raise InvalidInputError(
            f"{what} {value!r} is not a full address: give 0x and 40 hex digits, or the name "
            "of an account in this data directory"
        )
    from visdm.accounts import account_info

    try:
        return account_info(settings.keystore_dir, value).address
    except (KeystoreNotFoundError, InvalidInputError):
        raise InvalidInputError(
            f"{what} {value!r} is neither an address (0x and 40 hex digits) nor the name of an "
            f"account in {settings.keystore_dir}"
        ) from None


def _full_address(value: str, what: str) -> Address:
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise InvalidInputError(
            f"{what} {value} has a wrong EIP-55 checksum (mistyped?): check it, or give it "
            "in lower case"
        )
    return Address(to_checksum_address(value))


def compute_nodes(settings: Settings) -> list[ComputeNodeRecord]:
    """Every compute node ever admitted (suspended ones too), in admission order."""
    conn = connect_deployed(settings)
    return _nodes(conn.deployment.stakeholder_registry(conn.client))


def _nodes(registry: StakeholderRegistry) -> list[ComputeNodeRecord]:
    seen = dict.fromkeys(str(log["args"]["node"]) for log in registry.logs("NodeAdmitted"))
    return [registry.compute_node(a) for a in seen]


def describe_nodes(nodes: list[ComputeNodeRecord], *, active_only: bool = True) -> str:
    """``0x… (http://…)`` per node, or a sentence saying there is none."""
    shown = [n for n in nodes if n.active or not active_only]
    if not shown:
        return "no compute node is active: governance admits one with `visdm governance admit-node`"
    kind = "active compute nodes" if active_only else "admitted compute nodes"
    items = [
        f"{n.address} ({n.endpoint[:80] or 'no endpoint'}{'' if n.active else ', suspended'})"
        for n in shown[:_LISTED_NODES]
    ]
    more = f" and {len(shown) - _LISTED_NODES} more" if len(shown) > _LISTED_NODES else ""
    return f"{kind}: " + ", ".join(items) + more


def resolve_node(settings: Settings, text: str, *, active: bool = True) -> ComputeNodeRecord:
    """The compute node ``text`` names (address or local account name), admitted — and, with
    ``active``, not suspended; refusals list the nodes there are."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    try:
        address = resolve_account(settings, text, what="compute node")
    except InvalidInputError as exc:
        raise InvalidInputError(f"{exc}; {describe_nodes(_nodes(registry))}") from None
    record = registry.compute_node(address)
    if not record.admitted or (active and record.suspended):
        state = "suspended" if record.admitted else "not an admitted compute node"
        raise InvalidInputError(
            f"{address} is {state}; {describe_nodes(_nodes(registry), active_only=active)}"
        )
    return record


def add_region(
    settings: Settings, governance: LocalAccount, name: str
) -> tuple[list[str], TxResult]:
    """Add region ``name``; returns every region and the transaction."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    tx = registry.add_region(governance, name)
    return registry.regions(), tx


def admit_node(
    settings: Settings,
    governance: LocalAccount,
    node: str,
    *,
    region: str,
    endpoint: str,
    encryption_key: str,
    signer: str | None = None,
) -> tuple[ComputeNodeRecord, TxResult]:
    """Admit (or update) compute node ``node``; its quotes are signed by ``signer`` (default:
    the node's own address). ``node`` and ``signer`` are addresses or local account names.
    Returns the node's record and the transaction."""
    url = check_endpoint(endpoint)
    try:
        key = bytes.fromhex(encryption_key.removeprefix("0x"))
    except ValueError:
        raise InvalidInputError(f"encryption key {encryption_key!r} is not hex") from None
    if len(key) != 32:
        raise InvalidInputError(
            f"an X25519 public key has 32 bytes, {encryption_key!r} has {len(key)}: "
            "use the key `visdm account export-public` prints"
        )
    address = resolve_account(settings, node, what="compute node")
    signer_address = address if signer is None else resolve_account(settings, signer, what="signer")
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    if region not in registry.regions():
        raise InvalidInputError(
            f"region {region!r} does not exist (regions: {', '.join(registry.regions()) or 'none'})"
            ": add it with `visdm governance add-region NAME`"
        )
    conn.client.fund_from_dev_faucet(governance.address)
    tx = registry.admit_node(
        governance,
        address,
        signer=signer_address,
        region=region,
        encryption_key=key,
        endpoint=url,
    )
    return registry.compute_node(address), tx


def set_node_suspended(
    settings: Settings, governance: LocalAccount, node: str, *, suspended: bool
) -> tuple[ComputeNodeRecord, TxResult | None]:
    """Suspend or reinstate ``node`` (an address or local account name); returns its record and
    the transaction (``None``: the node was already in that state, and is left as it is)."""
    record = resolve_node(settings, node, active=False)
    if record.suspended == suspended:
        return record, None
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    conn.client.fund_from_dev_faucet(governance.address)
    if suspended:
        tx = registry.suspend_node(governance, record.address)
    else:
        tx = registry.reinstate_node(governance, record.address)
    return registry.compute_node(record.address), tx


def active_node_addresses(settings: Settings) -> list[str]:
    """Every compute node admitted and not suspended, in admission order."""
    return [n.address for n in compute_nodes(settings) if n.active]


# --- market parameters -------------------------------------------------------------------------

#: the market parameters, in the order of ``TrainingMarket.Parameters``
PARAMETER_NAMES: tuple[str, ...] = tuple(f.name for f in fields(MarketParameters))
#: the parameters that are periods in seconds (they also take units: ``90s``, ``12h``, ``3d``)
PERIOD_PARAMETERS = frozenset(
    {
        "min_voting_period",
        "max_voting_period",
        "reply_period",
        "start_period",
        "max_training_period",
        "claim_period",
        "challenge_window",
    }
)
_ADDRESS_PARAMETERS = frozenset({"treasury", "court"})
#: the Solidity width of each whole-number parameter: the ABI encoder refuses anything wider
_PARAMETER_BITS = {
    name: 16 if name in ("quorum_bps", "min_selection_providers") else 32
    for name in PARAMETER_NAMES
    if name not in _ADDRESS_PARAMETERS
}
_POSITIVE = ("reply_period", "start_period", "max_training_period")
_POSITIVE_MINIMUMS = ("min_batch_size", "min_selection_samples", "min_selection_providers")
_MAX_BPS = 10_000
_UNIT_SECONDS = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}
_PERIOD = re.compile(r"(?:[0-9]+[wdhms])+")
_PERIOD_PART = re.compile(r"([0-9]+)([wdhms])")
_DIGITS = re.compile(r"[0-9]+")
_SIGNED = re.compile(r"\s*-?[0-9]+\s*")
#: the longest value text read: far beyond any uint32, and short of Python's int() limit
_MAX_VALUE_CHARS = 100
_ZERO_ADDRESS = "0x" + "00" * 20
_PERIOD_HINT = "seconds, or whole numbers with units (90s, 30m, 12h, 3d, 2w, 1d12h)"
#: governance accounts named in one refusal
_LISTED_HOLDERS = 10


def parse_period(value: str | int, *, what: str = "period") -> int:
    """Seconds from ``value``: a whole number of seconds, or whole numbers with units
    (``90s``, ``30m``, ``12h``, ``3d``, ``2w``, ``1d12h``)."""
    text = value.strip().lower() if isinstance(value, str) else ""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    elif len(text) > _MAX_VALUE_CHARS:
        raise InvalidInputError(f"{what} is {len(text):,} characters long: give {_PERIOD_HINT}")
    elif _DIGITS.fullmatch(text):
        seconds = int(text)
    elif _PERIOD.fullmatch(text):
        seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _PERIOD_PART.findall(text))
    else:
        raise InvalidInputError(f"{what} must be {_PERIOD_HINT}, got {_shown(value)}")
    if seconds < 0:
        raise InvalidInputError(f"{what} must not be negative, got {seconds}")
    return seconds


def format_period(seconds: int) -> str:
    """``seconds`` in the largest units that divide it: ``3d``, ``1d12h``, ``90s`` → ``1m30s``."""
    if seconds <= 0:
        return f"{seconds}s"
    parts = []
    for unit, size in _UNIT_SECONDS.items():
        if unit == "w" and seconds % size:  # weeks only when whole: "10d", not "1w3d"
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def parameter_name(text: str) -> str:
    """The parameter ``text`` names: as in :class:`MarketParameters` (``quorum_bps``), in the
    camelCase of ``--json`` (``quorumBps``) or with dashes (``quorum-bps``)."""
    key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", text.strip()).replace("-", "_").lower()
    if key not in PARAMETER_NAMES:
        raise InvalidInputError(
            f"unknown market parameter {text.strip()[:60]!r}: the parameters are "
            + ", ".join(PARAMETER_NAMES)
        )
    return key


def parse_parameter_assignments(pairs: list[str] | tuple[str, ...]) -> dict[str, str]:
    """``NAME=VALUE`` words as a mapping of parameter names to value texts; each name once."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise InvalidInputError(
                f"{_shown(pair)} is not NAME=VALUE: give e.g. quorum_bps=5000 or reply_period=3d"
            )
        key = parameter_name(name)
        if key in out:
            raise InvalidInputError(
                f"{key} is given twice ({_shown(out[key])} and {_shown(value.strip())}): give "
                "it once"
            )
        out[key] = value.strip()
    return out


def parse_parameter_value(
    name: str, value: str | int, *, settings: Settings | None = None
) -> int | str:
    """``value`` for parameter ``name``: seconds for a period, a whole number, or an address
    (with ``settings``, also a local account name; ``court`` also ``none``)."""
    name = parameter_name(name)
    if name in _ADDRESS_PARAMETERS:
        text = str(value).strip()
        if len(text) > _MAX_VALUE_CHARS:
            raise InvalidInputError(f"{name} is {len(text):,} characters long: give an address")
        if name == "court" and text.lower() in ("none", "0", "0x0", _ZERO_ADDRESS):
            return ""
        if text.lower() in ("0", "0x0", _ZERO_ADDRESS):
            return _ZERO_ADDRESS  # check_parameters names the rule this breaks
        if _FULL_ADDRESS.fullmatch(text):
            return str(_full_address(text, name))
        if settings is None:
            raise InvalidInputError(f"{name} must be an address (0x and 40 hex digits)")
        return str(resolve_account(settings, text, what=name))
    if name in PERIOD_PARAMETERS:
        return parse_period(value, what=name)
    return _whole(name, value)


def _whole(name: str, value: str | int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and len(value) <= _MAX_VALUE_CHARS and _SIGNED.fullmatch(value):
        number = int(value.strip())
    else:
        raise InvalidInputError(f"{name} must be a whole number, got {_shown(value)}")
    if number < 0:
        raise InvalidInputError(f"{name} must not be negative, got {number}")
    return number


def check_parameters(params: MarketParameters) -> None:
    """Every rule ``TrainingMarket.setParameters`` checks, as a one-line
    :class:`~visdm.errors.InvalidInputError` that names the field."""
    for name, bits in _PARAMETER_BITS.items():
        value = getattr(params, name)
        if not 0 <= value < 1 << bits:
            unit = " s" if name in PERIOD_PARAMETERS else ""
            raise InvalidInputError(
                f"{name} must be at most {(1 << bits) - 1:,}{unit} (the contract's uint{bits}), "
                f"got {value:,}"
            )
    if params.quorum_bps > _MAX_BPS:
        raise InvalidInputError(
            f"quorum_bps must be at most {_MAX_BPS}, got {params.quorum_bps}: it is basis points "
            "of the weight left in the round (10000 = all of it)"
        )
    if params.min_voting_period > params.max_voting_period:
        raise InvalidInputError(
            f"min_voting_period ({format_period(params.min_voting_period)}) must not be above "
            f"max_voting_period ({format_period(params.max_voting_period)}): lower the one or "
            "raise the other"
        )
    for name in _POSITIVE:
        if getattr(params, name) == 0:
            raise InvalidInputError(
                f"{name} must be positive, got 0: a proposal would have no time for that step"
            )
    for name in _POSITIVE_MINIMUMS:
        if getattr(params, name) == 0:
            raise InvalidInputError(
                f"{name} must be at least 1, got 0: the minimum keeps one sample or provider "
                "from dominating what a consumer's model learns"
            )
    if not params.treasury or int(params.treasury, 16) == 0:
        raise InvalidInputError(
            "treasury must not be the zero address: unclaimed payouts would be burnt; give the "
            "address that receives them"
        )
    if params.challenge_window and not params.court:
        raise InvalidInputError(
            f"challenge_window ({format_period(params.challenge_window)}) needs a court: set "
            "court=ADDRESS of a ResultCourt as well, or challenge_window=0"
        )


def apply_parameter_changes(
    current: MarketParameters,
    changes: Mapping[str, str | int],
    *,
    settings: Settings | None = None,
) -> MarketParameters:
    """``current`` with ``changes`` applied (names as :func:`parameter_name` takes them, values
    as :func:`parse_parameter_value`), checked by :func:`check_parameters`; refuses no change
    at all and a change that changes nothing."""
    if not changes:
        raise InvalidInputError(
            "no change given: name at least one parameter as NAME=VALUE (parameters: "
            + ", ".join(PARAMETER_NAMES)
            + ")"
        )
    parsed: dict[str, int | str] = {}
    for raw_name, raw_value in changes.items():
        name = parameter_name(raw_name)
        if name in parsed:
            raise InvalidInputError(f"{name} is given twice: give it once")
        parsed[name] = parse_parameter_value(name, raw_value, settings=settings)
    after = replace(current, **parsed)  # type: ignore[arg-type]
    if after == current:
        same = ", ".join(f"{n} is already {parameter_text(n, parsed[n])}" for n in parsed)
        raise InvalidInputError(f"nothing to change: {same}; nothing was sent")
    check_parameters(after)
    return after


def parameter_text(name: str, value: int | str) -> str:
    """A parameter's value as :func:`parse_parameter_value` takes it back: periods in units
    (``3d``), no court as ``none``."""
    if name in PERIOD_PARAMETERS and isinstance(value, int):
        return format_period(value)
    return str(value) if value != "" else "none"


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "…"


@dataclass(frozen=True, slots=True)
class ParameterChange:
    """A change of the market parameters: the values before, the values the chain holds after,
    and the ``setParameters`` transaction."""

    before: MarketParameters
    after: MarketParameters
    tx: TxResult

    @property
    def changed(self) -> dict[str, tuple[int | str, int | str]]:
        """``{name: (before, after)}`` of each field the change changed."""
        return {
            name: (getattr(self.before, name), getattr(self.after, name))
            for name in PARAMETER_NAMES
            if getattr(self.before, name) != getattr(self.after, name)
        }


def market_parameters(settings: Settings) -> MarketParameters:
    """The market parameters the chain holds now."""
    conn = connect_deployed(settings)
    return conn.deployment.training_market(conn.client).parameters()


def governance_holders(settings: Settings) -> list[Address]:
    """Every account holding ``GOVERNANCE_ROLE`` now, in the order it was granted."""
    conn = connect_deployed(settings)
    registry = conn.deployment.stakeholder_registry(conn.client)
    return _holders(registry, conn.deployment.contracts["StakeholderRegistry"].block_number)


def _holders(registry: StakeholderRegistry, from_block: int) -> list[Address]:
    # AccessControl keeps no list of members: the grants are events, revocations are checked
    role = registry.governance_role()
    granted = registry.logs("RoleGranted", from_block=from_block, where={"role": role})
    seen = dict.fromkeys(to_checksum_address(str(log["args"]["account"])) for log in granted)
    return [Address(a) for a in seen if registry.is_governance(a)]


def holds_governance(settings: Settings, account: str) -> bool:
    """Whether ``account`` holds ``GOVERNANCE_ROLE`` now."""
    conn = connect_deployed(settings)
    return conn.deployment.stakeholder_registry(conn.client).is_governance(account)


def _check_governance(conn: Connection, account: LocalAccount, what: str) -> None:
    """Refuse ``account`` unless it holds ``GOVERNANCE_ROLE``, naming the accounts that do."""
    registry = conn.deployment.stakeholder_registry(conn.client)
    if registry.is_governance(account.address):
        return
    holders = _holders(registry, conn.deployment.contracts["StakeholderRegistry"].block_number)
    shown = ", ".join(holders[:_LISTED_HOLDERS]) or "no account"
    more = f" and {len(holders) - _LISTED_HOLDERS} more" if len(holders) > _LISTED_HOLDERS else ""
    raise InvalidInputError(
        f"{account.address} does not hold GOVERNANCE_ROLE, so {what} not its to change: act as "
        f"an account that holds it ({shown}{more}); nothing was sent"
    )


def set_market_parameters(
    settings: Settings, account: LocalAccount, changes: Mapping[str, str | int]
) -> ParameterChange:
    """Change the market parameters named in ``changes`` (the others stay as they are) as
    ``account``, which must hold ``GOVERNANCE_ROLE``. Every check runs before anything is
    sent; returns the values before and after, and the transaction."""
    for name in changes:  # names and values first: they need no chain
        key = parameter_name(name)
        parse_parameter_value(key, changes[name], settings=settings)
    conn = connect_deployed(settings)
    _check_governance(conn, account, "the market parameters are")
    market = conn.deployment.training_market(conn.client)
    before = market.parameters()
    after = apply_parameter_changes(before, changes, settings=settings)
    conn.client.fund_from_dev_faucet(account.address)
    tx = market.set_parameters(account, after)
    return ParameterChange(before=before, after=market.parameters(), tx=tx)


def scoring_fee_bps(settings: Settings) -> int:
    """The scoring fee proposals made now pay, in basis points of a completed proposal's price."""
    from visdm import scoring

    conn = connect_deployed(settings)
    return scoring.fee_contract(conn.client, conn.deployment).scoring_fee(0).current_bps


def set_scoring_fee(
    settings: Settings, account: LocalAccount, fee_bps: str | int
) -> tuple[int, int, TxResult]:
    """Set the scoring fee on proposals made from now on (what ``visdm scoring fee`` does),
    refusing the fee it already is; returns the fee before, after, and the transaction."""
    from visdm import scoring

    fee = _whole("scoring_fee_bps", fee_bps)
    conn = connect_deployed(settings)
    _check_governance(conn, account, "the scoring fee is")
    before = scoring.fee_contract(conn.client, conn.deployment).scoring_fee(0).current_bps
    if fee == before:
        raise InvalidInputError(f"nothing to change: the scoring fee is already {fee} bps")
    done = scoring.set_fee(conn.client, conn.deployment, account, fee)
    return before, fee, done.transactions[0]
