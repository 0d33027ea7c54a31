"""The launcher's files and the ClientApp's inputs, without starting any process."""

from __future__ import annotations

import ipaddress
import json
import stat
import tomllib
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flwr.app import ConfigRecord, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from tests.unit.federation._fakegrid import SPEC, split_regions
from visdm.errors import (
    FederationProcessError,
    FederationRoundError,
    InvalidInputError,
)
from visdm.federation import Federation, make_round_tls, new_supernode_key
from visdm.federation._local import initial_weights, node_seed
from visdm.federation._wire import from_record, to_record
from visdm.federation.client_app import handle_query, load_region_data
from visdm.federation.processes import write_app
from visdm.training._spec import parse_model_spec

pytestmark = pytest.mark.unit


def test_round_ca_signs_a_loopback_certificate_and_keys_are_owner_only(tmp_path: Path) -> None:
    tls = make_round_tls(tmp_path / "tls")
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    server = x509.load_pem_x509_certificate(tls.server_cert.read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    assert stat.S_IMODE(tls.server_key.stat().st_mode) == 0o600
    # a second round's CA is another CA: the first round's certificate does not chain to it
    other = x509.load_pem_x509_certificate(make_round_tls(tmp_path / "tls2").ca_cert.read_bytes())
    with pytest.raises(InvalidSignature):  # same issuer name, another key
        server.verify_directly_issued_by(other)


def test_supernode_keys_are_p384_in_openssh_form(tmp_path: Path) -> None:
    key = new_supernode_key(tmp_path, "eu")
    public = serialization.load_ssh_public_key(key.public_openssh())
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp384r1"
    assert stat.S_IMODE(key.private_key.stat().st_mode) == 0o600


def test_the_app_bundle_names_our_components_and_quotes_json_values(tmp_path: Path) -> None:
    spec = json.dumps(SPEC)
    write_app(tmp_path / "app", {"spec": spec, "num-rounds": 2, "min-share": 0.5})
    doc = tomllib.loads((tmp_path / "app" / "pyproject.toml").read_text())
    assert doc["tool"]["flwr"]["app"]["components"] == {
        "serverapp": "visdm.federation.server_app:app",
        "clientapp": "visdm.federation.client_app:app",
    }
    assert doc["tool"]["flwr"]["app"]["config"] == {"spec": spec, "num-rounds": 2, "min-share": 0.5}
    write_app(tmp_path / "sec", {}, app="secagg")
    sec = tomllib.loads((tmp_path / "sec" / "pyproject.toml").read_text())
    assert sec["tool"]["flwr"]["app"]["components"]["serverapp"].endswith("secagg:server")


def test_launcher_refuses_an_unknown_app_and_a_second_node_of_one_name(tmp_path: Path) -> None:
    fed = Federation(tmp_path)  # not started: nothing listens
    with pytest.raises(FederationRoundError, match="unknown app 'fedsgd'"):
        fed.run({"spec": "{}"}, app="fedsgd")
    fed.supernodes["eu"] = None  # type: ignore[assignment]
    with pytest.raises(FederationProcessError, match="already running"):
        fed.add_supernode("eu", key=None, node_config={})


def test_a_node_without_its_data_or_with_a_bad_seed_says_so(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="data-path"):
        load_region_data({"data-path": str(tmp_path / "missing.npz")})
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "seed").write_bytes(b"short")
    with pytest.raises(FederationRoundError, match="holds 5 bytes, not 32"):
        node_seed(tmp_path / "state")
    fresh = node_seed(tmp_path / "fresh")
    assert len(fresh) == 32 and node_seed(tmp_path / "fresh") == fresh  # kept, not redrawn
    assert stat.S_IMODE((tmp_path / "fresh" / "seed").stat().st_mode) == 0o600


def test_a_query_with_an_unknown_step_or_foreign_weights_is_refused(tmp_path: Path) -> None:
    spec = parse_model_spec(SPEC)
    node = split_regions(tmp_path, {"eu": 40}, 40)["eu"]
    TaskIdentity.run_id = TaskIdentity.task_id = TaskIdentity.node_id = 1
    weights = initial_weights(spec, bytes(32))
    val = to_record({"embeddings": np.zeros((2, 32)), "labels": np.zeros(2, dtype=np.int64)})

    def query(step: str, arrays: dict) -> Message:
        content = RecordDict(
            {
                "arrays": to_record(arrays),
                "validation": val,
                "config": ConfigRecord({"step": step, "tau": 1.0}),
            }
        )
        return Message(content, dst_node_id=101, message_type="query")

    run_config = {"spec": json.dumps(SPEC)}
    with pytest.raises(InvalidInputError, match="unknown query step 'dump-data'"):
        handle_query(query("dump-data", weights), run_config, node)
    with pytest.raises(FederationRoundError, match="disagree on the spec"):
        handle_query(query("tknn-counts", {"w": np.zeros(3)}), run_config, node)
    with pytest.raises(FederationRoundError, match="sent no arrays"):
        from_record(None)
