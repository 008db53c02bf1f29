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

    recipe = commands.add_parser(
        "recipe", help="train a family's recipe, or list the recipes with their recorded results"
    )
    recipe.add_argument("name", nargs="?", help="a recipe name; leave out to list them all")
    recipe.add_argument("--quick", action="store_true", help="the CPU run on the offline digits")
    recipe.add_argument("--root", default="data", help="where the data set is (full runs)")
    recipe.add_argument("--checkpoint", help="save after every epoch here, and resume from it")
    recipe.add_argument(
        "--record", action="store_true", help="store the result in convlab's recorded runs"
    )

    bench = commands.add_parser(
        "bench", help="time fit, the loader and d2l's Trainer against their baselines"
    )
    bench.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test, not figures")
    bench.add_argument("--device", help="where to train (default: CUDA, then MPS, then CPU)")
    bench.add_argument("--json", help="write every measurement and the machine's facts here")
    bench.add_argument("--threads", type=int, help="CPU threads for torch (default: every core)")
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
    if args.command == "recipe":
        return _recipe(args)
    if args.command == "bench":
        from convlab import bench

        return bench.main(
            quick=args.quick, device=args.device, json_path=args.json, threads=args.threads
        )

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


def _recipe(args: argparse.Namespace) -> int:
    from convlab import recipes

    if args.name is None:
        print(f"{'recipe':<13}{'model':<17}{'data':<14}{'epochs':>6}  full run       quick run")
        for name, r in recipes.RECIPES.items():
            cells = []
            for quick in (False, True):
                run = recipes.recorded(name, quick)
                cells.append(
                    f"{run['test_accuracy']:.1%} in {run['minutes']:.1f} min"
                    if run
                    else "unmeasured"
                )
            print(f"{name:<13}{r.model:<17}{r.data:<14}{r.epochs:>6}  {cells[0]:<15}{cells[1]}")
        return 0
    try:
        if args.record:
            entry = recipes.record(args.name, args.quick)
            print(f"recorded {args.name}: test accuracy {entry['test_accuracy']:.4f}")
            return 0
        _, history = recipes.run(
            args.name, quick=args.quick, root=args.root, checkpoint=args.checkpoint
        )
    except (ValueError, RuntimeError, FloatingPointError) as error:
        print(f"convlab: {error}", file=sys.stderr)
        return 2
    print(f"test accuracy {history[-1]['test_accuracy']:.4f}")
    return 0


def _in_channels(model: object) -> int:
    import torch

    for module in model.modules():  # type: ignore[attr-defined]
        if isinstance(module, torch.nn.Conv2d):
            return module.in_channels
    return 3


if __name__ == "__main__":
    raise SystemExit(main())
