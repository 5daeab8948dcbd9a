"""The command line: ``python -m backprop {demo,train,explain,info}``.

``demo`` trains the seed article's network (2-4-6-6-4-1, ReLU, sigmoid, binary cross-entropy,
Adam, 50 epochs) on its concentric circles and writes the article's figures; ``train`` trains
any layer list on any bundled data set; ``explain`` prints one step of backpropagation;
``info`` lists the version, the backends usable here and the engine each trains with.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .backend import limit_cpu_threads

DATASETS = ("circles", "moons", "spirals", "xor", "blobs", "digits")


# -- argument types: a bad value is argparse's one-line usage error (status 2), before anything
# runs; ArgumentTypeError's message is printed as is, after "argument --name:"


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, received {text!r}.")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, received {text!r}.")
    return value


def _float(text: str, expected: str, ok: Any) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"expected {expected}, received {text!r}.")
    return value


def _learning_rate(text: str) -> float:
    return _float(text, "a positive finite number such as 0.01", lambda v: v > 0)


def _noise(text: str) -> float:
    return _float(text, "a non-negative finite number such as 0.1", lambda v: v >= 0)


def _test_size(text: str) -> float | int:
    # as train_test_split: a fraction of the samples, or a number of them
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        pass
    return _float(
        text, "a fraction in (0, 1) such as 0.1 or a number of samples", lambda v: 0 < v < 1
    )


def _batch_size(text: str) -> int | str:
    if text == "full":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or 'full', received {text!r}."
        ) from None


def _hidden_sizes(text: str) -> list[int]:
    """``4,6,6,4`` as ``[4, 6, 6, 4]``; ``""`` (no entry at all) is no hidden layer.

    Every entry must be a positive integer: an empty entry (``4,,2``, a trailing comma) is a
    typo, not a layer to leave out, so it is refused with the others rather than skipped.
    """
    if not text.strip():
        return []
    sizes = []
    for i, entry in enumerate(text.split(","), start=1):
        try:
            size = int(entry)
        except ValueError:
            size = 0
            bad = f"is {entry.strip()!r}, not an integer" if entry.strip() else "is empty"
        else:
            bad = f"is {size}, not a positive integer"
        if size <= 0:
            raise argparse.ArgumentTypeError(
                "expected comma-separated positive integers such as 4,6,6,4, received "
                f"{text!r} (entry {i} {bad})."
            )
        sizes.append(size)
    return sizes


def _registered(kind: str) -> Any:
    """An argument type accepting the names ``backprop.<kind>.get`` knows."""

    def check(text: str) -> str:
        import backprop as bp

        try:
            getattr(bp, kind).get(text)
        except ValueError as exc:  # the registry's message lists the valid names
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = kind  # argparse names the type in some messages
    return check


def _loss_name(text: str) -> str:
    return text if text == "auto" else _registered("losses")(text)


def _save_path(text: str) -> str:
    """The file ``model.save`` will write, checked now: a failed save would lose the training.

    A target that means a folder is refused rather than guessed at: ``models/`` would be saved
    as the hidden file ``models/.npz``, and ``models`` beside a folder ``models`` as
    ``models.npz`` next to it, neither of which the user asked for.
    """
    target = text if text.endswith(".npz") else text + ".npz"  # as bp.io.save names it
    seps = tuple(s for s in (os.sep, os.altsep, "/") if s)
    if not text.strip() or (os.path.basename(target) == ".npz" and not text.endswith(seps)):
        raise argparse.ArgumentTypeError(
            f"expected a file name such as model.npz, received {text!r}."
        )
    if text.endswith(seps):
        raise argparse.ArgumentTypeError(
            f"cannot save to {text}: it names a folder (it ends with {text[-1]!r}); expected a "
            f"file name such as {os.path.join(text, 'model.npz')}."
        )
    if os.path.isdir(text) and not os.path.isdir(target):
        raise argparse.ArgumentTypeError(
            f"cannot save to {text}: it is a folder, and the model would be written beside it "
            f"as {target}. Name a file: {os.path.join(text, 'model.npz')} to save into the "
            f"folder, or {target} to mean that file."
        )
    folder = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(
            f"cannot save to {target}: the folder {folder} does not exist. Create it first "
            f"(mkdir -p {folder})."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(
            f"cannot save to {target}: the folder {folder} is not writable."
        )
    if os.path.isdir(target):
        raise argparse.ArgumentTypeError(
            f"cannot save to {target}: it is a folder; expected a file name such as model.npz."
        )
    return text


def _add_backend_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default=None, help="numpy, cupy, torch, jax, array_api_strict")
    p.add_argument("--device", default=None, help="e.g. cuda:0, 1, device1 (array_api_strict)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--seed", type=_seed, default=0, help="seeds data, weights and shuffling")


def _add_capture_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--no-capture",
        dest="capture",
        action="store_false",
        help="on a GPU, step eagerly instead of replaying each step recorded as a CUDA graph",
    )


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
        "factor=0.3, noise=0.1) with 10% held out, print the log and the test accuracy, and "
        "write the figures into --out.",
    )
    _add_backend_args(demo)
    _add_capture_arg(demo)
    demo.add_argument("--epochs", type=_positive_int, default=50)
    demo.add_argument("--out", default="backprop-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--no-animation", action="store_true", help="skip the training GIF")
    demo.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])

    train = sub.add_parser(
        "train",
        help="train a network on a bundled data set",
        description="Example: python -m backprop train --dataset moons --layers 25,50,50,25 "
        "--optimizer sgd --lr 0.01 --epochs 10000 --batch-size full. One process trains "
        "with model.fit; under mpirun -n K (K > 1) the K ranks train data-parallel.",
    )
    _add_data_args(train)
    _add_backend_args(train)
    _add_capture_arg(train)
    train.add_argument(
        "--activation", type=_registered("activations"), default="relu", help="hidden activation"
    )
    train.add_argument(
        "--loss",
        type=_loss_name,
        default="auto",
        help="auto picks from the data set; categorical_crossentropy trains on one-hot labels",
    )
    train.add_argument("--optimizer", type=_registered("optimizers"), default="adam")
    train.add_argument("--lr", type=_learning_rate, default=None, help="learning rate")
    train.add_argument("--epochs", type=_positive_int, default=50)
    train.add_argument("--batch-size", type=_batch_size, default="32", help="an integer, or 'full'")
    train.add_argument(
        "--save",
        type=_save_path,
        default=None,
        help="save the trained model to this .npz file (its folder must exist)",
    )
    train.add_argument("--verbose", type=int, default=2, choices=[0, 1, 2])

    explain = sub.add_parser("explain", help="print one training step, layer by layer")
    _add_data_args(explain)
    _add_backend_args(explain)
    explain.add_argument("--activation", type=_registered("activations"), default="relu")
    explain.add_argument("--batch", type=_positive_int, default=4, help="samples in the batch")

    info = sub.add_parser(
        "info", help="version, usable backends, their devices and the engine each trains with"
    )
    for command in (demo, train, explain, info):
        # what a command calls for a bad combination of values found after parsing
        command.set_defaults(usage_error=command.error)
    return parser


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default="circles", choices=DATASETS)
    p.add_argument("--n-samples", type=_positive_int, default=1000)
    p.add_argument("--noise", type=_noise, default=None, help="default: 0.1 (moons: 0.2)")
    p.add_argument(
        "--test-size", type=_test_size, default=0.1, help="a fraction, or a number of samples"
    )
    p.add_argument(
        "--layers",
        type=_hidden_sizes,
        default="4,6,6,4",
        help='hidden layer sizes, comma separated ("" for none: the output layer alone)',
    )


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


def _build(args: argparse.Namespace, n_features: int, n_classes: int, loss: str) -> Any:
    import backprop as bp

    layers = []
    for i, units in enumerate(args.layers):
        kw = {"input_dim": n_features} if i == 0 else {}
        layers.append(bp.layers.Dense(units, args.activation, **kw))
    first = {"input_dim": n_features} if not args.layers else {}
    kind = bp.losses.get(loss).kind
    if kind == "binary":
        layers.append(bp.layers.Dense(1, "sigmoid", **first))
    elif kind in ("sparse", "categorical"):
        layers.append(bp.layers.Dense(n_classes, "softmax", **first))
    else:
        layers.append(bp.layers.Dense(1, **first))
    return bp.Sequential(
        layers,
        backend=args.backend,
        device=args.device,
        dtype=args.dtype,
        seed=args.seed,
        capture=getattr(args, "capture", True),  # explain trains nothing: it has no flag
    )


def _optimizer(name: str, lr: float | None) -> Any:
    import backprop as bp

    opt = bp.optimizers.get(name)
    return opt if lr is None else bp.optimizers.get({**opt.get_config(), "learning_rate": lr})


def _setup(args: argparse.Namespace, what: str, make: Any) -> Any:
    """``make()``, its ValueError, TypeError or ImportError turned into a usage error.

    Such an error before training comes from a bad combination of values (a backend that is
    not installed, a test size larger than the data set): nothing has run yet, so it is a
    mistake in the arguments, reported as argparse reports one (status 2).
    """
    try:
        return make()
    except (ValueError, TypeError, ImportError) as exc:
        args.usage_error(f"{what}: {exc}")


# -- commands ------------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    """``info``: the version, the usable backends, their default devices and engines."""
    import backprop as bp
    from backprop.backend import resolve
    from backprop.training.choose import describe_engines

    print(f"backprop {bp.__version__} (Python {sys.version.split()[0]}, NumPy {np.__version__})")
    print("usable backends, and the engine a plain fit trains with on each (and why):")
    names = bp.available_backends()
    engines = describe_engines(names)  # the reasons come from the function that chooses
    for name in names:
        b = resolve(name)
        extra = ""
        if name == "array_api_strict":
            extra = " (fake devices: CPU_DEVICE, device1, device2, no_float64, no_x64)"
        print(f"  {name:18s} default device: {b.describe()}{extra}")
        print(f"  {'':18s} engine: {engines[name]}")
    print(
        "  under mpirun -n K (K > 1), train runs the data-parallel engine on any of them: "
        "one allreduce of the gradient per step"
    )
    current = bp.get_backend()
    env = os.environ.get("BACKPROP_BACKEND")
    print(f"current backend: {current.spec} (BACKPROP_BACKEND={env})")
    return 0


def _loss_for(args: argparse.Namespace, n_classes: int) -> str:
    """The loss to train with: ``--loss``, or for ``auto`` the usual one for the data set."""
    import backprop as bp

    if args.loss == "auto":
        return "binary_crossentropy" if n_classes == 2 else "sparse_categorical_crossentropy"
    kind = bp.losses.get(args.loss).kind
    # a regression loss fits the label as one number: with more than two classes that number
    # is no quantity, and the accuracy printed (of y_hat > 0.5) would mean nothing
    if kind in ("binary", "regression") and n_classes != 2:
        args.usage_error(
            f"argument --loss: {args.loss} expects 2 classes, received --dataset "
            f"{args.dataset} with {n_classes}: use sparse_categorical_crossentropy, "
            "categorical_crossentropy or auto."
        )
    return args.loss


def cmd_train(args: argparse.Namespace) -> int:
    """``train``: a layer list on a bundled data set; prints the log and the test scores.

    One process trains exactly as ``model.fit`` does (on JAX, the compiled epoch); under
    ``mpirun -n K`` with K > 1, the ranks train data-parallel and rank 0 prints and saves.
    """
    import backprop as bp

    # everything that a bad value can break runs before training: a mistake costs no epochs
    X, y, k = _setup(args, "--dataset/--n-samples/--noise", lambda: _load(args))
    loss = _loss_for(args, k)
    Xtr, Xte, ytr, yte = _setup(
        args,
        "--n-samples/--test-size",
        lambda: bp.datasets.train_test_split(X, y, test_size=args.test_size, seed=args.seed),
    )
    if bp.losses.get(loss).kind == "categorical":  # this loss takes one-hot rows
        ytr, yte = bp.datasets.one_hot(ytr, k), bp.datasets.one_hot(yte, k)
    distributed = bp.distributed.launched_by_mpi()
    if distributed and args.device is None and (args.backend or "").startswith("cupy"):
        args.device = bp.distributed.local_rank()  # one GPU per rank
    model = _setup(args, "--backend/--device/--dtype", lambda: _build(args, X.shape[1], k, loss))
    model.compile(loss=loss, optimizer=_optimizer(args.optimizer, args.lr), metrics=["accuracy"])
    batch = len(Xtr) if args.batch_size == "full" else args.batch_size
    fit: Any = model.fit
    evaluate: Any = model.evaluate
    rank, size = 0, 1
    if distributed:  # the DataParallel path only with K > 1 ranks: it trains step by step
        dp = bp.distributed.DataParallel(model)
        fit, evaluate, rank, size = dp.fit, dp.evaluate, dp.rank, dp.size
    if args.verbose and rank == 0:
        model.summary()
    t0 = time.perf_counter()
    try:
        fit(Xtr, ytr, epochs=args.epochs, batch_size=batch, verbose=args.verbose)
    except bp.model.NonFiniteLossError as exc:
        # the library's advice names fit's arguments; say it in this command's flags
        where = str(exc).split(". ")[0]
        lr = args.lr if args.lr is not None else model.optimizer.get_config()["learning_rate"]
        print(f"error: {where}: the training diverged; lower --lr (was {lr:g}).", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - t0
    result = evaluate(Xte, yte)
    if rank != 0:
        return 0
    ranks = f" x {size} ranks" if size > 1 else ""
    print(
        f"test loss {result['loss']:.4f} - test accuracy {result['accuracy']:.4f} "
        f"({seconds:.2f} s on {model.backend.spec}{ranks})"
    )
    if args.save:
        print(f"saved to {bp.io.save(model, args.save)}")  # the path, with .npz added
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """``explain``: one training step of a fresh network, printed equation by equation."""
    X, y, k = _setup(args, "--dataset/--n-samples/--noise", lambda: _load(args))
    loss = "binary_crossentropy" if k == 2 else "sparse_categorical_crossentropy"
    model = _setup(args, "--backend/--device/--dtype", lambda: _build(args, X.shape[1], k, loss))
    model.compile(loss=loss, optimizer="adam")
    model.explain(X, y, batch=args.batch)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """``demo``: the seed article's network and figures."""
    import backprop as bp
    from backprop import viz

    X, y = bp.datasets.make_circles(1000, factor=0.3, noise=0.1, seed=args.seed)
    Xtr, Xte, ytr, yte = bp.datasets.train_test_split(X, y, test_size=0.1, seed=args.seed)
    model = _setup(
        args,
        "--backend/--device/--dtype",
        lambda: bp.Sequential(
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
            capture=args.capture,
        ),
    )
    try:  # after the checks above: a mistake in them leaves no empty folder behind
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        args.usage_error(f"argument --out: cannot create the folder {args.out}: {exc}")
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


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A warning as one line: the user of a command reads its message, not library source."""
    print(f"warning: {category.__name__}: {message}", file=sys.stderr if file is None else file)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m backprop`` and of the ``backprop`` script."""
    args = _parser().parse_args(argv)
    commands = {"demo": cmd_demo, "train": cmd_train, "explain": cmd_explain, "info": cmd_info}
    # NumPy's floating-point warnings (overflow, invalid value) are silenced: they quote
    # library lines, and what they announce is reported once, as one line, by the training
    # itself (NonFiniteLossError below, or a non-finite value printed); NumPy backends only,
    # the other libraries do not warn. Both settings are undone when the command returns.
    with (
        warnings.catch_warnings(),
        np.errstate(over="ignore", invalid="ignore", divide="ignore"),
        limit_cpu_threads(getattr(args, "backend", None)),
    ):
        warnings.showwarning = _show_warning
        try:
            return commands[args.command](args)
        except (ValueError, TypeError, RuntimeError, ImportError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
