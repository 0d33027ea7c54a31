"""``visdm demo --serve``: refused with ``--json`` before anything is played."""

from __future__ import annotations

from pathlib import Path

import pytest

from visdm.cli import main


def test_serve_with_json_is_refused_before_the_demo_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")
    home = tmp_path / "home"
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--quick", "--serve", "--json", "--data-dir", str(home)])
    assert exit_info.value.code == 2
    assert "--serve prints a URL" in capsys.readouterr().err
    assert not home.exists()  # nothing was played
