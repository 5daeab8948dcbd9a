"""The command line: ``python -m backprop {demo,train,explain,info}``.

``demo`` trains the seed article's network (2-4-6-6-4-1, ReLU, sigmoid, binary cross-entropy,
Adam, 50 epochs) on its concentric circles and writes the article's figures; ``train`` trains
any layer list on any bundled data set; ``explain`` prints one step of backpropagation;
``info`` lists the version and the backends usable here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

DATASETS = ("circles", "moons", "spirals", "xor", "blobs", "digits")


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=None, help="numpy, cupy, torch, jax, array_api_strict")
    p.add_argument("--device", default=None, help="e.g. cuda:0, 1, device1 (array_api_strict)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seed", type=int, default=0, help="seeds data, weights and shuffling")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backprop",
        description="Neural networks with hand-written backpropagation on any Array API library.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train the article's network on concentric circles and write its figures",
        description="Train 2-4-6-6-4-1 (ReLU, sigmoid, BCE, Adam) on make_circles(1000, "
        "factor=0.3, noise=0.1) with 10%% held out, print the log and the test accuracy, and "
        "write the figures into --out.",
    )
    _add_backend_args(demo)
    demo.add_argument("--epochs", type=int, default=50)
    demo.add_argument("--out", default="backprop-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--no-animation", action="store_true", help="skip the training GIF")
    demo.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])

    train = sub.add_parser(
        "train",
        help="train a network on a bundled data set",
        description="Example: python -m backprop train --dataset moons --layers 25,50,50,25 "
        "--optimizer sgd --lr 0.01 --epochs 10000 --batch-size full",
    )
    _add_data_args(train)
    _add_backend_args(train)
    train.add_argument("--activation", default="relu", help="hidden activation")
    train.add_argument("--loss", default="auto", help="auto picks from the data set")
    train.add_argument("--optimizer", default="adam")
    train.add_argument("--lr", type=float, default=None, help="learning rate")
    train.add_argument("--epochs", type=int, default=50)
    train.add_argument("--batch-size", default="32", help="an integer, or 'full'")
    train.add_argument("--save", default=None, help="save the trained model to this .npz file")
    train.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])

    explain = sub.add_parser("explain", help="print one training step, layer by layer")
    _add_data_args(explain)
    _add_backend_args(explain)
    explain.add_argument("--activation", default="relu")
    explain.add_argument("--batch", type=int, default=4, help="samples in the batch")

    sub.add_parser("info", help="version, usable backends and their devices")
    return parser


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="circles", choices=DATASETS)
    p.add_argument("--n-samples", type=int, default=1000)
    p.add_argument("--noise", type=float, default=None, help="default: 0.1 (moons: 0.2)")
    p.add_argument("--test-size", type=float, default=0.1)
    p.add_argument("--layers", default="4,6,6,4", help="hidden layer sizes, comma separated")


# -- pieces --------------------------------------------------------------------------------------


def _load(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, int]:
    """The data set named on the command line, and its number of classes."""
    from . import datasets

    n, seed = args.n_samples, args.seed
    noise = args.noise if args.noise is not None else (0.2 if args.dataset == "moons" else 0.1)
    if args.dataset == "circles":
        X, y = datasets.make_circles(n, factor=0.3, noise=noise, seed=seed)
    elif args.dataset == "moons":
        X, y = datasets.make_moons(n, noise=noise, seed=seed)
    elif args.dataset == "spirals":
        X, y = datasets.make_spirals(n, n_classes=3, noise=noise / 2, seed=seed)
    elif args.dataset == "xor":
        X, y = datasets.make_xor(n, noise=noise, seed=seed)
    elif args.dataset == "blobs":
        X, y = datasets.make_blobs(n, centers=3, seed=seed)
    else:
        X, y = datasets.load_digits()
    return X, y, int(y.max()) + 1


def _hidden_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--layers expects comma-separated integers, received {text!r}.") from None
    if any(s <= 0 for s in sizes):
        raise SystemExit(f"--layers sizes must be positive, received {text!r}.")
    return sizes


def _build(args: argparse.Namespace, n_features: int, n_classes: int, loss: str) -> Any:
    import backprop as bp

    hidden = _hidden_sizes(args.layers)
    layers = []
    for i, units in enumerate(hidden):
        kw = {"input_dim": n_features} if i == 0 else {}
        layers.append(bp.layers.Dense(units, args.activation, **kw))
    first = {"input_dim": n_features} if not hidden else {}
    if loss == "binary_crossentropy":
        layers.append(bp.layers.Dense(1, "sigmoid", **first))
    elif loss in ("sparse_categorical_crossentropy", "categorical_crossentropy"):
        layers.append(bp.layers.Dense(n_classes, "softmax", **first))
    else:
        layers.append(bp.layers.Dense(1, **first))
    return bp.Sequential(
        layers, backend=args.backend, device=args.device, dtype=args.dtype, seed=args.seed
    )


def _optimizer(name: str, lr: float | None) -> Any:
    import backprop as bp

    opt = bp.optimizers.get(name)
    return opt if lr is None else bp.optimizers.get({**opt.get_config(), "learning_rate": lr})


# -- commands ------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    """``info``: the version, the usable backends and their default devices."""
    import backprop as bp
    from backprop.backend import resolve

    print(f"backprop {bp.__version__} (Python {sys.version.split()[0]}, NumPy {np.__version__})")
    print("usable backends:")
    for name in bp.available_backends():
        b = resolve(name)
        extra = ""
        if name == "array_api_strict":
            extra = " (fake devices: CPU_DEVICE, device1, device2, no_float64, no_x64)"
        print(f"  {name:18s} default device: {b.describe()}{extra}")
    current = bp.get_backend()
    env = os.environ.get("BACKPROP_BACKEND")
    print(f"current backend: {current.spec} (BACKPROP_BACKEND={env})")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """``train``: a layer list on a bundled data set; prints the log and the test scores."""
    import backprop as bp

    X, y, k = _load(args)
    loss = args.loss
    if loss == "auto":
        loss = "binary_crossentropy" if k == 2 else "sparse_categorical_crossentropy"
    Xtr, Xte, ytr, yte = bp.datasets.train_test_split(
        X, y, test_size=args.test_size, seed=args.seed
    )
    if args.device is None and (args.backend or "").startswith("cupy"):
        args.device = bp.distributed.local_rank()  # under mpirun: one GPU per rank
    model = _build(args, X.shape[1], k, loss)
    model.compile(loss=loss, optimizer=_optimizer(args.optimizer, args.lr), metrics=["accuracy"])
    # under mpirun -n K: data-parallel over the K ranks, rank 0 printing and saving
    dp = bp.distributed.DataParallel(model)
    if args.verbose and dp.is_root:
        model.summary()
    batch = len(Xtr) if args.batch_size == "full" else _int(args.batch_size, "--batch-size")
    t0 = time.perf_counter()
    dp.fit(Xtr, ytr, epochs=args.epochs, batch_size=batch, verbose=args.verbose)
    seconds = time.perf_counter() - t0
    result = dp.evaluate(Xte, yte)
    if not dp.is_root:
        return 0
    ranks = f" x {dp.size} ranks" if dp.size > 1 else ""
    print(
        f"test loss {result['loss']:.4f} - test accuracy {result['accuracy']:.4f} "
        f"({seconds:.2f} s on {model.backend.spec}{ranks})"
    )
    if args.save:
        model.save(args.save)
        print(f"saved to {args.save}")
    return 0


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise SystemExit(f"{what} expects an integer or 'full', received {text!r}.") from None


def cmd_explain(args: argparse.Namespace) -> int:
    """``explain``: one training step of a fresh network, printed equation by equation."""
    X, y, k = _load(args)
    loss = "binary_crossentropy" if k == 2 else "sparse_categorical_crossentropy"
    model = _build(args, X.shape[1], k, loss)
    model.compile(loss=loss, optimizer="adam")
    model.explain(X, y, batch=args.batch)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the seed article's network and figures."""
    import backprop as bp
    from backprop import viz

    os.makedirs(args.out, exist_ok=True)
    X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=args.seed)
    Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=args.seed)
    model = bp.Sequential(
        [
            bp.layers.Dense(4, "relu", input_dim=2),
            bp.layers.Dense(6, "relu"),
            bp.layers.Dense(6, "relu"),
            bp.layers.Dense(4, "relu"),
            bp.layers.Dense(1, "sigmoid"),
        ],
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
    )
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.summary()
    written = []

    def save(fig: Any, name: str) -> None:
        path = os.path.join(args.out, name)
        fig.savefig(path, dpi=100)
        written.append(path)

    save(viz.plot_dataset(X, y, title="make_circles(1000, factor=0.3, noise=0.1)"), "dataset.png")
    save(viz.plot_architecture(model), "architecture.png")
    save(viz.plot_activations(), "activations.png")
    save(viz.plot_loss_surface(), "loss_surface.png")

    t0 = time.perf_counter()
    if args.no_animation:
        history = model.fit(
            Xtr, ytr, epochs=args.epochs, validation_data=(Xte, yte), verbose=args.verbose
        )
    else:
        gif = os.path.join(args.out, "training.gif")
        history = viz.animate_training(
            model,
            Xtr,
            ytr,
            epochs=args.epochs,
            path=gif,
            validation_data=(Xte, yte),
            verbose=args.verbose,
        )
        written.append(gif)
    seconds = time.perf_counter() - t0
    save(viz.plot_history(model.history), "history.png")
    save(viz.plot_decision_boundary(model, Xte, yte), "decision_boundary.png")
    result = model.evaluate(Xte, yte)
    print(
        f"test loss {result['loss']:.4f} - test accuracy {result['accuracy']:.4f} "
        f"({args.epochs} epochs in {seconds:.1f} s on {model.backend.spec})"
    )
    del history
    print("figures:")
    for path in written:
        print(f"  {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m backprop`` and of the ``backprop`` script."""
    args = _parser().parse_args(argv)
    commands = {"demo": cmd_demo, "train": cmd_train, "explain": cmd_explain, "info": cmd_info}
    try:
        return commands[args.command](args)
    except (ValueError, TypeError, RuntimeError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
