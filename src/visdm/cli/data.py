"""``visdm data``: ready-made sample data for trying the marketplace."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import JsonOption, console, emit

__all__ = ["app"]

app = typer.Typer(help="Sample data to try the marketplace with.")


@app.command("fashion-mnist")
def fashion_mnist(
    out_dir: Path = typer.Argument(..., help="New folder to write PNGs and labels.csv into."),
    count: int = typer.Option(20, "--count", help="How many images."),
    offset: int = typer.Option(0, "--offset", help="Index of the first image."),
    split: str = typer.Option("test", "--split", help="train or test."),
    as_json: bool = JsonOption,
) -> None:
    """Write Fashion-MNIST images (Debian package dataset-fashion-mnist) as an asset folder."""
    from visdm.datasets import export_fashion_mnist
    from visdm.errors import InvalidInputError

    if split not in ("train", "test"):
        raise InvalidInputError(f"split must be train or test, not {split!r}")
    path = export_fashion_mnist(out_dir, count=count, offset=offset, split=split)  # type: ignore[arg-type]
    if as_json:
        emit({"directory": path, "images": count, "labelsFile": path / "labels.csv"}, as_json=True)
        return
    console.print(f"wrote {count} images and labels.csv to {path}")


#: the default privacy budget: well inside the default licence's cap (ε ≤ 8)
DEFAULT_EPSILON = 3.0


@app.command("model-spec")
def model_spec(
    architecture: str = typer.Argument(
        "scatter_linear", help="scatter_linear, scatter_cnn, mlp, small_cnn or resnet."
    ),
    classes: int = typer.Option(10, "--classes", help="Number of classes."),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Training epochs. Default: the architecture's tuned recipe."
    ),
    samples: int | None = typer.Option(
        None,
        "--samples",
        help="How many samples you will select: sizes the batch (about a tenth for the "
        "scatter models). Default: a batch that suits a few thousand samples.",
    ),
    dp_epsilon: float | None = typer.Option(
        None,
        "--dp-epsilon",
        help=f"Train with DP-SGD to this ε (δ = 1e-5). Default {DEFAULT_EPSILON:g}; the default "
        "licence lets a round spend at most 8.",
    ),
    no_dp: bool = typer.Option(
        False,
        "--no-dp",
        help="Train without DP-SGD: only data whose owner allowed it (asset add --allow-no-dp).",
    ),
    channels: int = typer.Option(1, "--channels", help="1 (grey) or 3 (RGB)."),
    size: int = typer.Option(28, "--size", help="Input height and width in pixels."),
) -> None:
    """Print a model spec (JSON) to start from; `propose --spec` takes the file.

    The output is the spec document itself (the schema's snake_case names), so this command
    takes no --json.

    The default is a linear model on a fixed scattering transform, trained with DP-SGD with
    the settings that measured best (benchmarks/training.py), and a batch size of at least 64
    (the market's default minimum), as assets under the default licence require; it carries
    no seed (the node draws one).
    """
    import json

    from visdm.errors import InvalidInputError
    from visdm.training import canonical_spec_json, recommended_spec

    if no_dp and dp_epsilon is not None:
        raise InvalidInputError(
            f"--no-dp and --dp-epsilon {dp_epsilon:g} contradict each other: pass one of them"
        )
    if samples is not None and samples < 1:
        raise InvalidInputError(f"--samples must be at least 1, got {samples}")
    epsilon = None if no_dp else DEFAULT_EPSILON if dp_epsilon is None else dp_epsilon
    # fills the architecture's defaults, refuses bad values
    spec = recommended_spec(
        architecture,
        samples=samples,
        input_shape=(channels, size, size),
        num_classes=classes,
        epsilon=epsilon,
        epochs=epochs,
    )
    typer.echo(json.dumps(json.loads(canonical_spec_json(spec)), indent=2))
