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


@app.command("model-spec")
def model_spec(
    architecture: str = typer.Argument("mlp", help="mlp, small_cnn or resnet."),
    classes: int = typer.Option(10, "--classes", help="Number of classes."),
    epochs: int = typer.Option(3, "--epochs", help="Training epochs."),
    dp_epsilon: float | None = typer.Option(
        None, "--dp-epsilon", help="Train with DP-SGD to this ε (δ = 1e-5)."
    ),
    channels: int = typer.Option(1, "--channels", help="1 (grey) or 3 (RGB)."),
    size: int = typer.Option(28, "--size", help="Input height and width in pixels."),
) -> None:
    """Print a model spec (JSON) to start from; `propose --spec` takes the file."""
    import json

    from visdm.training import canonical_spec_json, parse_model_spec

    spec: dict[str, object] = {
        "architecture": architecture,
        "input_shape": [channels, size, size],
        "num_classes": classes,
        "epochs": epochs,
        "batch_size": 64,
        "optimizer": "adam",
        "learning_rate": 0.002,
    }
    if dp_epsilon is not None:
        spec["dp"] = {"target_epsilon": dp_epsilon, "delta": 1e-5, "max_grad_norm": 1.0}
    parsed = parse_model_spec(spec)  # fills the architecture's defaults, refuses bad values
    typer.echo(json.dumps(json.loads(canonical_spec_json(parsed)), indent=2))
