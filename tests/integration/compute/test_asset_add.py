"""`add_asset` on anvil when the provider is careless: a folder with bad files or rows is refused
unless ``partial``, the same folder twice is refused with the id of the first asset unless
``again``, a Ctrl-C leaves nothing pinned, and ``check_asset`` reports all that and changes
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.compute.test_asset_flow import Flow, flow, write_folder
from visdm.assets import LEDGER_FILE, add_asset, check_asset, withdraw_asset
from visdm.chain.contracts import AssetRegistry
from visdm.errors import ContractRevertError, InvalidInputError
from visdm.ingest._ledger import AssetLedger
from visdm.manifest import Licence
from visdm.storage import LocalStore

pytestmark = pytest.mark.integration
__all__ = ["flow"]  # the fixture, shared with the asset-flow tests


def _pins(flow: Flow) -> list[str]:
    store = flow.settings.store_dir
    return LocalStore(store).pins() if store.exists() else []


def _untidy(folder: Path) -> Path:
    """Ten good images, a broken one, a row for a missing file and one unusable row."""
    write_folder(folder, list(range(10)), broken=True)
    labels = folder / "labels.csv"
    labels.write_text(labels.read_text() + "gone.png,bag\nimg000.png,bag,extra\n")
    return folder


def test_an_untidy_folder_is_refused_whole_unless_partial(flow: Flow, tmp_path: Path) -> None:
    folder = _untidy(tmp_path / "a")
    with pytest.raises(InvalidInputError) as info:
        flow.add("provider", folder)
    message = str(info.value)
    assert "\n" not in message
    assert "10 accepted, 1 rejected, 2 unusable row(s) in labels.csv" in message
    assert "pass --partial to register only the 10 accepted file(s)" in message
    assert len(info.value.report.label_problems) == 2  # type: ignore[attr-defined]
    assert flow.assets.asset_count() == 0 and _pins(flow) == []

    added = flow.add("provider", folder, partial=True)
    assert added.sample_count == 10
    assert added.rejected == [{"file": "broken.png", "reason": added.rejected[0]["reason"]}]
    assert [(p["line"], p["reason"]) for p in added.label_problems] == [
        (13, "gone.png: no such file in the directory"),
        (14, "expected 2 fields (filename,label), got 3: ['img000.png', 'bag', 'extra']"),
    ]


def test_the_same_folder_twice_is_refused_with_the_first_assets_id(
    flow: Flow, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "a", [1, 2, 3, 4])
    first = flow.add("provider", folder)
    pinned = set(_pins(flow))
    with pytest.raises(
        InvalidInputError, match=rf"already registered, in asset\(s\) {first.asset_id}"
    ):
        flow.add("provider", folder)
    # a copy of the folder elsewhere, or a part of it, is the same images
    part = write_folder(tmp_path / "part", [2, 3])
    with pytest.raises(InvalidInputError, match=f"added from {folder.resolve()}"):
        flow.add("provider", part)
    assert flow.assets.asset_count() == 1 and set(_pins(flow)) == pinned
    # some new images: registered, with a note naming the asset that holds the others
    more = flow.add("provider", write_folder(tmp_path / "more", [3, 4, 5]))
    assert more.already_registered == [
        {"asset_id": first.asset_id, "files": 2, "directory": str(folder.resolve())}
    ]
    # another owner's asset is no reason to refuse
    assert flow.add("provider2", folder).already_registered == []
    # on purpose
    again = flow.add("provider", folder, again=True)
    assert again.asset_id > first.asset_id
    # withdrawn assets are out of the market: the images may come back
    for asset_id in (first.asset_id, more.asset_id, again.asset_id):
        withdraw_asset(flow.settings, flow.accounts["provider"], asset_id)
    assert flow.add("provider", folder).already_registered == []


def test_ctrl_c_before_registering_leaves_nothing_pinned_or_recorded(
    flow: Flow, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "a", list(range(8)))

    def interrupt(done: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        flow.add("provider", folder, on_sample=interrupt)

    def interrupt_at_signing(stage: str, report: object) -> None:
        if stage == "sign manifest":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        flow.add("provider", folder, on_stage=interrupt_at_signing)
    assert _pins(flow) == [] and flow.assets.asset_count() == 0
    # nothing was recorded either: the folder is not "already registered"
    assert flow.add("provider", folder).sample_count == 8


def test_a_registration_refused_on_chain_unpins_what_was_stored(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: AssetRegistry, *args: object, **kwargs: object) -> None:
        raise ContractRevertError("AssetRegistryNotProvider", {"account": "0x0"})

    monkeypatch.setattr(AssetRegistry, "register_asset", refuse)
    with pytest.raises(ContractRevertError):
        flow.add("provider", write_folder(tmp_path / "a", [1, 2]))
    assert _pins(flow) == []


def test_interrupted_while_registering_then_added_again_finds_the_registration(
    flow: Flow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_folder(tmp_path / "a", [1, 2, 3])
    register = AssetRegistry.register_asset

    def mined_then_interrupted(self: AssetRegistry, *args: object, **kwargs: object) -> None:
        register(self, *args, **kwargs)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # Ctrl-C while the receipt was awaited

    monkeypatch.setattr(AssetRegistry, "register_asset", mined_then_interrupted)
    with pytest.raises(KeyboardInterrupt):
        flow.add("provider", folder)
    monkeypatch.undo()
    assert flow.assets.asset_count() == 1
    assert len(_pins(flow)) == 4  # three samples and the manifest: the asset needs them
    with pytest.raises(InvalidInputError, match=r"already registered, in asset\(s\) 1 "):
        flow.add("provider", folder)


def test_a_licence_the_manifest_cannot_carry_is_refused_before_anything_is_stored(
    flow: Flow, tmp_path: Path
) -> None:
    folder = write_folder(tmp_path / "a", [1, 2])
    for purpose in ("train\x00ing", "a\x01b", "Training", ""):
        with pytest.raises(InvalidInputError, match=r"licence purpose .* is not allowed"):
            flow.add("provider", folder, licence=Licence((purpose,)))
    assert _pins(flow) == [] and flow.assets.asset_count() == 0


def test_check_reports_everything_and_changes_nothing(flow: Flow, tmp_path: Path) -> None:
    folder = _untidy(tmp_path / "a")
    owner = flow.accounts["provider"].address
    result = check_asset(flow.settings, folder, owner=owner, regions=["local", "mars"])
    assert not result.ready
    assert result.problems[0].startswith(f"{folder}: 10 accepted, 1 rejected")
    assert result.problems[1].startswith("unknown region(s) mars")
    assert [r["file"] for r in result.rejected] == ["broken.png"]
    assert len(result.label_problems) == 2 and result.not_checked == []
    ok = check_asset(flow.settings, folder, owner=owner, partial=True)
    assert ok.ready and ok.accepted == 10 and ok.nodes == [flow.accounts["node"].address]
    assert not [p for p in (flow.settings.store_dir / "blocks").rglob("*") if p.is_file()]
    assert not (flow.settings.provider_dir / LEDGER_FILE).exists()
    assert flow.assets.asset_count() == 0
    # once registered, the check names the asset; the record is read, not written
    first = add_asset(flow.settings, flow.accounts["provider"], folder, partial=True)
    ledger = flow.settings.provider_dir / LEDGER_FILE
    before = ledger.read_bytes()
    again = check_asset(flow.settings, folder, owner=owner, partial=True)
    assert not again.ready and f"asset(s) {first.asset_id}" in again.problems[0]
    assert again.already_registered[0]["files"] == 10
    assert ledger.read_bytes() == before
    AssetLedger(ledger).close()  # still a readable record


def test_check_without_a_chain_says_what_it_could_not_check(tmp_path: Path) -> None:
    from visdm.config import Settings

    folder = write_folder(tmp_path / "a", [1, 2])
    result = check_asset(Settings(home=tmp_path / "home"), folder, owner=None)
    assert result.ready and result.accepted == 2
    assert result.not_checked[0].startswith("regions, nodes and earlier registrations: no local")


def _cli(flow: Flow, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    from visdm.cli import main

    capsys.readouterr()
    home, url = str(flow.settings.home), flow.chain.rpc_url
    with pytest.raises(SystemExit) as done:
        main(["--home", home, "--rpc-url", url, "--account", "provider", "asset", "add", *args])
    captured = capsys.readouterr()
    return int(done.value.code or 0), captured.out, captured.err


def test_cli_check_lists_every_problem_and_add_prints_them_before_refusing(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = str(_untidy(tmp_path / "a"))
    code, out, err = _cli(flow, capsys, folder, "--check")
    assert code == 2
    assert "  rejected broken.png: " in out
    assert "  labels.csv line 13: gone.png: no such file in the directory" in out
    assert "  labels.csv line 14: expected 2 fields" in out
    assert "add would refuse (1 problem(s)):" in out
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, out, err = _cli(flow, capsys, folder, "--check", "--partial")
    assert code == 0 and "ready: `visdm asset add` would register 10 sample(s)" in out
    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    code, out, err = _cli(flow, capsys, folder)
    assert code == 2 and out == ""
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[0].startswith("  rejected broken.png")
    assert lines[-1].startswith("error: ") and "--partial" in lines[-1]
    assert flow.assets.asset_count() == 0
    code, out, err = _cli(flow, capsys, folder, "--partial")
    assert code == 0 and "asset 1 registered: 10 samples" in out
    assert "  labels.csv line 13: gone.png: no such file in the directory" in out


def test_cli_ctrl_c_says_what_was_kept(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import visdm.assets

    monkeypatch.setenv("VISDM_PASSWORD", "pw")

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(visdm.assets, "prepare_asset", interrupted)
    code, _, err = _cli(flow, capsys, str(write_folder(tmp_path / "a", [1])))
    assert code == 130
    assert err.strip().splitlines()[-1] == (
        "error: interrupted: nothing was registered and the samples stored so far were unpinned"
    )


@pytest.mark.parametrize(
    ("purpose", "says"),
    [("train\\u0000ing", "NUL character"), ("train\\u0001ing", "licence purpose 'train\\x01ing'")],
    ids=["nul", "control"],
)
def test_cli_a_licence_text_the_manifest_cannot_carry(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str], purpose: str, says: str
) -> None:
    licence = tmp_path / "licence.json"
    licence.write_text(f'{{"purposes": ["{purpose}"]}}')  # the escape reaches the JSON parser
    folder = str(write_folder(tmp_path / "a", [1]))
    for extra in (["--check"], []):
        code, _, err = _cli(flow, capsys, folder, "--licence", str(licence), *extra)
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and says in lines[0], err
    assert _pins(flow) == [] and flow.assets.asset_count() == 0


def test_cli_json_from_add_to_attestation_to_withdrawal(
    flow: Flow, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The asset commands and the node's ``serve --once`` speak the one JSON language of the
    CLI on a real chain: camelCase, the transactions sent, ``sharpness`` as search names it."""
    import json

    from visdm.cli import main
    from visdm.cli._json import scheme_problems

    monkeypatch.setenv("VISDM_PASSWORD", "pw")
    base = ["--home", str(flow.settings.home), "--rpc-url", flow.chain.rpc_url]

    def cli(who: str, *args: str) -> object:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main([*base, "--account", who, *args, "--json"])
        out, err = capsys.readouterr()
        assert done.value.code in (0, None), err
        data = json.loads(out)
        assert scheme_problems(data) == []
        return data

    added = cli("provider", "asset", "add", str(write_folder(tmp_path / "a", [1, 2, 3])))
    assert isinstance(added, dict) and added["sampleCount"] == 3
    (sent,) = added["transactions"]
    assert sent["gasUsed"] == added["gasUsed"] > 0 and sent["txHash"].startswith("0x")
    served = cli("node", "node", "serve", "--once")
    assert served == {
        "assetEvents": 1,
        "trainingJobs": 0,
        "scoringBatches": 0,
        "cursor": served["cursor"],  # type: ignore[index]
    }
    shown = cli("stranger", "asset", "show", str(added["assetId"]), "--samples", "1")
    assert isinstance(shown, dict) and shown["status"] == "active"
    assert "sharpness" in shown["samples"][0] and "blur" not in shown["samples"][0]
    assert sum(row["samples"] for row in shown["labels"]) == 3
    listed = cli("provider", "asset", "list", "--mine")
    assert [(a["assetId"], a["sampleCount"]) for a in listed] == [(added["assetId"], 3)]  # type: ignore[union-attr]
    gone = cli("provider", "asset", "withdraw", str(added["assetId"]))
    assert gone["status"] == "withdrawn" and len(gone["transactions"]) == 1  # type: ignore[index]
