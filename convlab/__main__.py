"""Command line: ``python -m convlab summary vgg16``, ``models`` and ``train``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _input_size(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a size: use S (square), HxW or CxHxW, for example 224 or 3x224x224"
        ) from None
    if len(sizes) not in (1, 2, 3) or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a size: use S, HxW or CxHxW")
    return sizes


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="convlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    show = commands.add_parser(
        "summary", help="layer-by-layer table of a model: shapes, parameters, memory, MACs"
    )
    show.add_argument("model", help="a model name (see: python -m convlab models)")
    show.add_argument(
        "--input-size",
        type=_input_size,
        help="S, HxW or CxHxW (default: the model's native size, or 32 with --small)",
    )
    show.add_argument("--batch", type=int, default=1, help="images per batch (default 1)")
    show.add_argument("--small", action="store_true", help="the model's small-image configuration")
    show.add_argument("--num-classes", type=int, help="output classes (default: the model's)")
    show.add_argument("--in-channels", type=int, help="input channels (default: the model's)")
    show.add_argument("--max-rows", type=int, help="show at most this many layer rows")

    commands.add_parser("models", help="list every model name with its native input size")

    train = commands.add_parser("train", help="train a model with convlab.train.fit")
    train.add_argument("model", help="a model name (see: python -m convlab models)")
    train.add_argument(
        "--data",
        choices=("digits", "synthetic", "fashion_mnist", "cifar10"),
        default="digits",
        help="data set (default: the offline digits)",
    )
    train.add_argument("--root", default="data", help="where downloaded data sets live")
    train.add_argument("--size", type=int, help="image side (digits: default 28; others: resize)")
    train.add_argument("--epochs", type=int, default=5)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    train.add_argument("--seed", type=int, default=0, help="seeds initialization and data order")
    train.add_argument("--checkpoint", help="save after every epoch here, and resume from it")
    train.add_argument("--history", help="write the per-epoch history to this JSON file")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    from convlab import models
    from convlab.summary import summary

    if args.command == "models":
        for name in models.names():
            entry = models.spec(name)
            source = "  (torchvision parity)" if entry.torchvision else ""
            print(f"{name:<22} {entry.input_size:>4} px{source}")
        return 0

    if args.command == "train":
        return _train(args)

    try:
        entry = models.spec(args.model)
        kwargs = dict(entry.small) if args.small else {}
        if args.num_classes is not None:
            kwargs["num_classes"] = args.num_classes
        if args.in_channels is not None:
            kwargs["in_channels"] = args.in_channels
        model = models.create(args.model, **kwargs)
        channels = args.in_channels or _in_channels(model)
        size = args.input_size or ((32,) if args.small else (entry.input_size,))
        if len(size) == 1:
            size = (channels, size[0], size[0])
        elif len(size) == 2:
            size = (channels, *size)
        if args.batch < 1:
            raise ValueError(f"--batch must be at least 1, got {args.batch}")
        result = summary(model, (args.batch, *size))
    except ValueError as error:
        print(f"convlab: {error}", file=sys.stderr)
        return 2
    print(result.table(max_rows=args.max_rows))
    return 0


def _train(args: argparse.Namespace) -> int:
    import json

    import torch

    from convlab import data as datasets
    from convlab import models
    from convlab.train import fit

    try:
        entry = models.spec(args.model)
        options: dict[str, object] = {"batch_size": args.batch_size, "seed": args.seed}
        if args.data == "digits":
            options["size"] = args.size or 28
        elif args.data in ("fashion_mnist", "cifar10"):
            options.update(root=args.root, resize=args.size)
        data = getattr(datasets, args.data)(**options)
        torch.manual_seed(args.seed)
        small = entry.small if data.image_size <= 64 else {}
        model = models.create(
            args.model, num_classes=data.num_classes, in_channels=data.in_channels, **small
        )
        history = fit(
            model,
            data,
            args.epochs,
            lr=args.lr,
            checkpoint=args.checkpoint,
            progress=not args.quiet,
            plot=False,
        )
    except (ValueError, RuntimeError, FloatingPointError) as error:
        print(f"convlab: {error}", file=sys.stderr)
        return 2
    if args.history and int(os.environ.get("RANK", "0")) == 0:
        with open(args.history, "w") as f:
            json.dump(history, f, indent=1)
    if history:
        last = history[-1]
        print(
            f"epoch {last['epoch']:.0f}: train loss {last['train_loss']:.4f}, "
            f"train accuracy {last['train_accuracy']:.4f}, test accuracy {last['test_accuracy']:.4f}"
        )
    return 0


def _in_channels(model: object) -> int:
    import torch

    for module in model.modules():  # type: ignore[attr-defined]
        if isinstance(module, torch.nn.Conv2d):
            return module.in_channels
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
