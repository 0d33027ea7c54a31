"""``visdm node serve``'s budget options: a value the machine cannot give is refused in one line
before anything is opened (no password asked, no lock taken, no chain contacted)."""

from __future__ import annotations

from pathlib import Path

import pytest

from visdm.cli import main
from visdm.compute._budget import machine_cpus


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--jobs", "0"], "--jobs 0"),
        (["--memory", "-1"], "--memory -1.0"),
        (["--cpus", str(machine_cpus() + 1)], f"--cpus {machine_cpus() + 1}"),
    ],
)
def test_serve_refuses_a_budget_the_machine_cannot_give(
    options: list[str], named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["--home", str(tmp_path / "home"), "node", "serve", *options])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert named in err
    assert len(err.splitlines()) == 1
    assert not (tmp_path / "home" / "node" / "serve.lock").exists()
