"""Private RAM directories of a node's workers are named for the node's key *and* its working
directory, so that two nodes under one key on one machine (two regions, or the test workers of
one suite) never sweep each other's in-flight job input."""

from __future__ import annotations

from pathlib import Path

from visdm.compute._training import private_prefix

ADDRESS = "0x426Ef6dB0F9952eC43Cb350D3E52a0F978a4b49a"


def test_the_prefix_names_the_kind_the_key_and_the_working_directory(tmp_path: Path) -> None:
    one, two = tmp_path / "node-a", tmp_path / "node-b"
    assert private_prefix("job", ADDRESS, one) == private_prefix("job", ADDRESS, one)
    assert private_prefix("job", ADDRESS, one).startswith("visdm-job-426ef6db-")
    assert private_prefix("job", ADDRESS, one) != private_prefix("job", ADDRESS, two)
    assert private_prefix("score", ADDRESS, two) != private_prefix("job", ADDRESS, two)
    # the same directory however it is spelled: a restarted node finds its own leftovers
    assert private_prefix("score", ADDRESS, one / ".." / "node-a") == private_prefix(
        "score", ADDRESS, one
    )
