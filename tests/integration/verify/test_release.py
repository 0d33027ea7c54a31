"""Releasing a result after its challenge window without a ``--verify`` node: the status and
the claims say when claims open; a release inside the window, of a challenged result or a
second time is refused in one line; ``claim`` releases a due result itself; the web page
offers the release only once it would go through."""

from __future__ import annotations

import re
import warnings

import pytest

from tests.integration.compute.roundkit import PASSWORD
from tests.integration.verify.conftest import WINDOW, Checked
from visdm.chain.contracts import ProposalStatus
from visdm.errors import InvalidInputError
from visdm.market import workflow
from visdm.web import Sessions, create_app

with warnings.catch_warnings():  # Starlette asks for httpx2, which is not installed here
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

HTML = {"accept": "text/html"}


def _web(vr: Checked) -> tuple[TestClient, str]:
    """The web app with the consumer's account unlocked; its CSRF token."""
    sessions = Sessions()
    client = TestClient(
        create_app(vr.rnd.settings, sessions=sessions),
        base_url="http://127.0.0.1",
        follow_redirects=False,
    )
    client.get(f"/login?token={sessions.launch_token}")
    csrf = re.search(r'name="csrf" value="([^"]+)"', client.get("/account").text)
    assert csrf is not None
    unlock = {"account": "consumer", "password": PASSWORD, "csrf": csrf[1]}
    assert client.post("/account/unlock", data=unlock).status_code == 303
    return client, csrf[1]


def test_a_result_is_released_by_anyone_after_its_window_and_claims_open(vr: Checked) -> None:
    rnd = vr.rnd
    pid = vr.trained(rnd.trainer())
    provider = rnd.accounts["provider"]
    client, csrf = _web(vr)

    # inside the window: claims wait, and every way to release says until when
    (held,) = workflow.claimable(rnd.as_("provider"), provider.address, [pid])[0]
    assert held.tx_hash is None and held.amount > 0
    assert "can be challenged until" in held.note and f"`visdm release {pid}`" in held.note
    with pytest.raises(InvalidInputError, match=f"proposal {pid} cannot be released yet"):
        workflow.release(rnd.as_("provider"), provider, pid)
    view = workflow.proposal_status(rnd.settings, pid)
    assert view["court"] == {
        "windowEnds": rnd.market.proposal(pid).deadline,
        "challenged": False,
        "released": False,
        "releasable": False,
    }
    assert "can be challenged until" in view["next"]
    page = client.get(f"/proposals/{pid}", headers=HTML).text
    assert 'id="court"' in page and "release-submit" not in page
    assert f'data-sse="/proposals/{pid}/events"' in page  # still live: it may be overturned
    refused = client.post("/release", data={"proposal": str(pid), "csrf": csrf}, headers=HTML)
    assert refused.status_code == 400 and "cannot be released yet" in refused.text

    rnd.chain.advance_time(WINDOW)
    assert 'id="release-submit"' in client.get(f"/proposals/{pid}", headers=HTML).text
    # a provider's claim releases the due result first (anyone may), then claims
    (receipt,) = workflow.claim(rnd.as_("provider"), provider, [pid])
    assert receipt.note == "released and claimed" and receipt.amount == held.amount
    record = rnd.market.proposal(pid)
    assert (record.status, record.deadline) == (ProposalStatus.COMPLETED, 0)
    assert rnd.market.credit_of(rnd.accounts["node"].address) >= record.training_cost
    (other,) = workflow.claim(rnd.as_("provider2"), rnd.accounts["provider2"], [pid])
    assert other.note == "claimed" and rnd.market.proposal(pid).unclaimed == 0

    with pytest.raises(InvalidInputError, match="already released"):
        workflow.release(rnd.as_("provider"), provider, pid)
    again = client.post("/release", data={"proposal": str(pid), "csrf": csrf}, headers=HTML)
    assert again.status_code == 400 and "already released" in again.text
    page = client.get(f"/proposals/{pid}", headers=HTML).text
    assert "result released" in page and "data-sse=" not in page


def test_a_challenged_result_cannot_be_released(vr: Checked) -> None:
    rnd = vr.rnd
    pid = vr.trained(rnd.trainer())
    vr.court.challenge(vr.checker.local_account, pid)
    rnd.chain.advance_time(WINDOW)
    with pytest.raises(InvalidInputError, match="its result is challenged"):
        workflow.release(rnd.as_("consumer"), rnd.accounts["consumer"], pid)
    view = workflow.proposal_status(rnd.settings, pid)
    assert view["court"]["challenged"] and not view["court"]["releasable"]
    (held,) = workflow.claimable(rnd.as_("provider"), rnd.accounts["provider"].address, [pid])[0]
    assert "challenged" in held.note and held.tx_hash is None
