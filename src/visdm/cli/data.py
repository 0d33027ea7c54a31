"""``visdm data``: ready-made sample data for trying the marketplace."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console

__all__ = ["app"]

app = typer.Typer(help="Sample data to try the marketplace with.")


@app.command("fashion-mnist")
def fashion_mnist(
    out_dir: Path = typer.Argument(..., help="New folder to write PNGs and labels.csv into."),
    count: int = typer.Option(20, "--count", help="How many images."),
    offset: int = typer.Option(0, "--offset", help="Index of the first image."),
    split: str = typer.Option("test", "--split", help="train or test."),
) -> None:
    """Write Fashion-MNIST images (Debian package dataset-fashion-mnist) as an asset folder."""
    from visdm.datasets import export_fashion_mnist
    from visdm.errors import InvalidInputError

    if split not in ("train", "test"):
        raise InvalidInputError(f"split must be train or test, not {split!r}")
    path = export_fashion_mnist(out_dir, count=count, offset=offset, split=split)  # type: ignore[arg-type]
    console.print(f"wrote {count} images and labels.csv to {path}")
