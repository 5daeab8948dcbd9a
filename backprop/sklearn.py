"""scikit-learn estimators trained by backprop: :class:`MLPClassifier` and :class:`MLPRegressor`.

They follow :mod:`sklearn.neural_network`'s estimators (same parameters, defaults, fitted
attributes and stopping rule) and run on any backprop backend. The network is a
``bp.Sequential`` of ``bp.layers.Dense`` layers; each fit is ``Sequential.fit`` with a callback
that applies scikit-learn's convergence rule::

    hidden layers:  a = g(a @ W + b)          g: relu, tanh, logistic (sigmoid), identity
    output layer:   sigmoid + log-loss        binary (one unit) and multilabel (one per label)
                    softmax + log-loss        multiclass
                    identity + squared error  regression (one unit per output)
    objective:      loss(batch) + alpha / (2 * batch_size) * sum_l ||W_l||^2

Where the arrays live:

- ``backend=``/``device=`` pick where the network trains (any backprop backend; by default the
  current one: ``bp.use_backend``, ``bp.set_backend``, ``BACKPROP_BACKEND``, else NumPy).
- With ``sklearn.set_config(array_api_dispatch=True)``, a CuPy, torch or array-api-strict ``X``
  trains on its own library and device (unless ``backend`` says otherwise), and ``coefs_``,
  ``intercepts_``, ``classes_`` (numeric labels) and every prediction are arrays of that library
  on that device. NumPy in gives NumPy out, always. (scikit-learn accepts the setting only
  with the environment variable ``SCIPY_ARRAY_API=1`` set.)

With the same ``random_state``, ``shuffle=False`` and batches of equal size, training takes
exactly scikit-learn's steps: the same initial weights (drawn as scikit-learn draws them), the
same objective, Adam/SGD updates, schedules, stopping rule and early-stopping split. What
differs (see ``docs/sklearn.md``): the shuffling order; a last batch smaller than the others
gets the L2 term of a full one; the default ``dtype="float32"`` (scikit-learn follows X);
``solver="lbfgs"`` and ``loss="poisson"`` are not supported.

``fit(X, y, sample_weight=...)`` weighs as scikit-learn's MLP (>= 1.7): each batch's objective
is ``(sum_i w_i L_i + alpha/2 ||W||^2) / sum_i w_i``. Here the weights are divided by their
mean over the training rows and the L2 term by that mean as well, which is that objective
exactly when the batch is the whole training set (or weighs on average as it does); otherwise
each step is scikit-learn's scaled by the batch's mean weight over the data's.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> from sklearn.pipeline import make_pipeline
>>> from sklearn.preprocessing import StandardScaler
>>> from backprop.sklearn import MLPClassifier
>>> X, y = load_iris(return_X_y=True)
>>> clf = make_pipeline(
...     StandardScaler(),
...     MLPClassifier(hidden_layer_sizes=(16,), learning_rate_init=0.01, tol=1e-3, random_state=0),
... ).fit(X, y)
>>> clf.score(X, y) > 0.9
True
>>> clf.predict_proba(X[:2]).shape
(2, 3)
"""

from __future__ import annotations

import itertools
import math
import numbers
import warnings
from typing import Any

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from . import activations as _activations
from . import backend as _backend
from . import callbacks as _callbacks
from . import layers as _layers
from . import losses as _losses
from . import optimizers as _optimizers
from . import regularizers as _regularizers
from .model import NonFiniteLossError, Sequential

Array = Any

__all__ = ["MLPClassifier", "MLPRegressor"]

# scikit-learn's activation names -> backprop's
_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
_OUTPUT_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "softmax": "softmax"}


# ---------------------------------------------------------------------------------------------
# Losses in scikit-learn's scaling (summed over the outputs, averaged over the samples)


class _SummedBinaryCrossentropy(_losses.BinaryCrossentropy):
    """Binary cross-entropy summed over the k labels and averaged over the n samples.

    ``L = -sum(y log y_hat + (1 - y) log(1 - y_hat)) / n``, fused with sigmoid:
    ``dL/dz = (y_hat - y) / n``. This is scikit-learn's ``binary_log_loss``; backprop's
    ``binary_crossentropy`` averages over the k labels too, so it is this loss divided by k.
    """

    name = "summed_binary_crossentropy"

    def forward(self, y, y_hat, xp):
        return super().forward(y, y_hat, xp) * y_hat.shape[1]

    def gradient(self, y, y_hat, xp):
        return super().gradient(y, y_hat, xp) * y_hat.shape[1]

    def from_logits(self, y, z, y_hat, xp):
        loss, dz = super().from_logits(y, z, y_hat, xp)
        k = z.shape[1]
        return loss * k, dz * k

    def logits_gradient(self, y, y_hat, xp):
        return (y_hat - y) / y_hat.shape[0]

    # each row's loss, summed over its labels (sample weights multiply it)
    def per_sample(self, y, y_hat, xp):
        return super().per_sample(y, y_hat, xp) * y_hat.shape[1]

    def per_sample_from_logits(self, y, z, xp):
        return super().per_sample_from_logits(y, z, xp) * z.shape[1]


class _HalfSquaredError(_losses.Loss):
    """Half the squared error, summed over the k outputs and averaged over the n samples.

    ``L = sum((y_hat - y)^2) / (2 n)``, ``dL/dy_hat = (y_hat - y) / n``: the gradient
    scikit-learn's MLPRegressor uses (its reported loss divides by k as well).
    """

    name = "half_squared_error"
    kind = "regression"

    def forward(self, y, y_hat, xp):
        d = y_hat - y
        return xp.sum(d * d) / (2.0 * y_hat.shape[0])

    def gradient(self, y, y_hat, xp):
        return (y_hat - y) / y_hat.shape[0]

    def per_sample(self, y, y_hat, xp):
        d = y_hat - y
        return xp.sum(d * d, axis=-1) / 2.0


# ---------------------------------------------------------------------------------------------
# Parameter checks (run by fit, as scikit-learn asks: __init__ only stores)


def _check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integral: bool = False,
) -> None:
    kind = numbers.Integral if integral else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or math.isnan(value):
        what = "an integer" if integral else "a number"
        raise TypeError(f"{name} must be {what}, received {name}={value!r}.")
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if too_low or too_high:
        lo = "" if low is None else f"{'(' if low_open else '['}{low}, "
        hi = "inf)" if high is None else f"{high}{')' if high_open else ']'}"
        interval = f"{lo or '(-inf, '}{hi}"
        raise ValueError(f"{name} must be in {interval}, received {name}={value!r}.")


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, received {name}={value!r}.")


def _hidden_sizes(sizes: Any) -> list[int]:
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = [sizes]
    try:
        sizes = list(sizes)
    except TypeError:
        raise TypeError(
            "hidden_layer_sizes must be an int or a sequence of ints such as (100,) or "
            f"(64, 32), received {sizes!r}."
        ) from None
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1:
            raise ValueError(
                f"hidden_layer_sizes must hold integers >= 1, received hidden_layer_sizes="
                f"{sizes!r}."
            )
    return [int(s) for s in sizes]


def _looks_like_sizes(value: Any) -> bool:
    """Whether ``value`` would be valid ``hidden_layer_sizes`` (an int or a sequence of ints)."""
    if isinstance(value, str):
        return False
    try:
        _hidden_sizes(value)
    except (TypeError, ValueError):
        return False
    return True


# ---------------------------------------------------------------------------------------------
# Where arrays live


def _place_of(a: Any) -> _backend.Backend | None:
    """The backend of an array of a supported library other than NumPy, else None."""
    name = _backend.array_backend_name(a)
    if name is None or name == "numpy":
        return None
    return _backend.backend_of(a)


def _dispatch_place(X: Any) -> _backend.Backend | None:
    """X's backend when sklearn's array API dispatch is on and X is not NumPy, else None."""
    return _place_of(X) if get_config()["array_api_dispatch"] else None


def _same_place(a: _backend.Backend | None, b: _backend.Backend | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.name == b.name and (a.device == b.device or str(a.device) == str(b.device))


def _float_name(dtype: Any) -> str:
    """``"float64"`` or ``"float32"`` for a floating dtype of any library."""
    return "float64" if "64" in str(dtype) else "float32"


def _is_numeric(a: Any) -> bool:
    if isinstance(a, np.ndarray):
        return a.dtype.kind in "biuf"
    return _backend.array_backend_name(a) is not None


# ---------------------------------------------------------------------------------------------
# scikit-learn's stopping rule, as a backprop callback


class _SklearnMonitor(_callbacks.Callback):
    """Records the epoch losses on the estimator and stops the way scikit-learn's MLP does.

    Stop when, for more than ``n_iter_no_change`` epochs in a row, the training loss did not
    fall below ``best_loss_ - tol`` (or, with early stopping, the validation score did not rise
    above ``best_validation_score_ + tol``). With ``solver="sgd", learning_rate="adaptive"``
    the learning rate is divided by 5 instead, until it is below 1e-6.
    """

    def __init__(self, est: _BaseMLP, n_train: int, validation: tuple | None):
        self.est, self.n_train, self.validation = est, n_train, validation
        self.converged = False
        self.best_params: list[list[Array]] | None = None

    def on_epoch_end(self, epoch, logs=None):
        est, opt = self.est, self.model.optimizer
        loss = float(logs["loss"])
        est.n_iter_ += 1
        est.loss_ = loss
        est.t_ += self.n_train
        est.loss_curve_.append(loss)
        if est.verbose:
            print(f"Iteration {est.n_iter_}, loss = {loss:.8f}")
        self._update_no_improvement_count()
        if est.solver == "sgd" and est.learning_rate == "invscaling":
            opt.learning_rate = float(est.learning_rate_init) / (est.t_ + 1) ** est.power_t
        if est._no_improvement_count > est.n_iter_no_change:
            what = "Validation score" if self.validation is not None else "Training loss"
            msg = (
                f"{what} did not improve more than tol={est.tol:f} for "
                f"{est.n_iter_no_change} consecutive epochs."
            )
            adaptive = est.solver == "sgd" and est.learning_rate == "adaptive"
            if adaptive and opt.learning_rate > 1e-6:
                opt.learning_rate = opt.learning_rate / 5.0
                est._no_improvement_count = 0
                if est.verbose:
                    print(f"{msg} Setting learning rate to {opt.learning_rate:f}")
            else:
                if est.verbose:
                    print(msg + (" Learning rate too small." if adaptive else "") + " Stopping.")
                self.converged = True
                self.model.stop_training = True

    def _update_no_improvement_count(self) -> None:
        est = self.est
        if self.validation is None:
            last = est.loss_curve_[-1]
            if last > est.best_loss_ - est.tol:
                est._no_improvement_count += 1
            else:
                est._no_improvement_count = 0
            est.best_loss_ = min(est.best_loss_, last)
            return
        score = est._device_score(self.model, *self.validation)
        est.validation_scores_.append(score)
        if est.verbose:
            print(f"Validation score: {score:f}")
        if score < est.best_validation_score_ + est.tol:
            est._no_improvement_count += 1
        else:
            est._no_improvement_count = 0
        if score > est.best_validation_score_:
            est.best_validation_score_ = score
            # copies: the optimizer may update the parameters in place
            self.best_params = _copy_params(self.model)


# ---------------------------------------------------------------------------------------------
# The estimators


class _BaseMLP(BaseEstimator):
    """Shared machinery of :class:`MLPClassifier` and :class:`MLPRegressor`."""

    def __init__(
        self,
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        backend: str | None = None,
        device: Any = None,
        dtype: str = "float32",
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.backend = backend
        self.device = device
        self.dtype = dtype

    # -- hooks the subclasses fill --------------------------------------------------------------
    def _encode_targets(self, y, first_pass, incremental, classes, place, compute):
        """(targets on the compute backend, n_outputs, output activation, loss)."""
        raise NotImplementedError

    def _device_score(self, model: Sequential, X: Array, Y: Array, w: Array | None = None) -> float:
        """Accuracy or R^2 of the model on data already on its backend (early stopping).

        Weighted by ``w`` (sample weights on the backend) when given, as scikit-learn's
        ``accuracy_score`` and ``r2_score`` weigh.
        """
        raise NotImplementedError

    # -- parameters -----------------------------------------------------------------------------
    def _check_params(self) -> list[int]:
        sizes = _hidden_sizes(self.hidden_layer_sizes)
        _check_choice("activation", self.activation, tuple(_ACTIVATIONS))
        if self.solver == "lbfgs":
            raise ValueError(
                "solver='lbfgs' is not supported by backprop.sklearn (backprop trains by "
                "mini-batch gradient descent); use solver='adam' (the default) or 'sgd', or "
                "sklearn.neural_network for L-BFGS."
            )
        _check_choice("solver", self.solver, ("adam", "sgd"))
        _check_number("alpha", self.alpha, 0.0)
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto"):
            _check_number("batch_size", self.batch_size, 1, integral=True)
        _check_choice("learning_rate", self.learning_rate, ("constant", "invscaling", "adaptive"))
        _check_number("learning_rate_init", self.learning_rate_init, 0.0, low_open=True)
        _check_number("power_t", self.power_t, 0.0)
        _check_number("max_iter", self.max_iter, 1, integral=True)
        _check_number("tol", self.tol, 0.0)
        _check_number("momentum", self.momentum, 0.0, 1.0, high_open=True)
        _check_number("validation_fraction", self.validation_fraction, 0.0, 1.0, high_open=True)
        _check_number("beta_1", self.beta_1, 0.0, 1.0, high_open=True)
        _check_number("beta_2", self.beta_2, 0.0, 1.0, high_open=True)
        _check_number("epsilon", self.epsilon, 0.0, low_open=True)
        if self.n_iter_no_change != np.inf:
            _check_number("n_iter_no_change", self.n_iter_no_change, 1, integral=True)
        # used by L-BFGS only, which is refused above; checked all the same, as scikit-learn does
        _check_number("max_fun", self.max_fun, 1, integral=True)
        for name in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise TypeError(f"{name} must be True or False, received {name}={value!r}.")
        _check_choice("dtype", self.dtype, ("float32", "float64"))
        return sizes

    def _compute_backend(self, place: _backend.Backend | None) -> _backend.Backend:
        """Where the network trains: backend=/device=, else X's place, else the current one."""
        if self.backend is not None:
            return _backend.resolve(self.backend, self.device)
        if place is not None:
            return place if self.device is None else _backend.resolve(place, self.device)
        return _backend.resolve(None, self.device)

    def _make_optimizer(self) -> _optimizers.Optimizer:
        if self.solver == "adam":
            return _optimizers.Adam(
                learning_rate=float(self.learning_rate_init),
                beta1=float(self.beta_1),
                beta2=float(self.beta_2),
                epsilon=float(self.epsilon),
            )
        return _optimizers.SGD(
            learning_rate=float(self.learning_rate_init),
            momentum=float(self.momentum),
            nesterov=bool(self.nesterovs_momentum),
        )

    # -- the network ----------------------------------------------------------------------------
    def _network(
        self,
        compute: _backend.Backend,
        batch_size: int,
        seed: int | None,
        mean_weight: float = 1.0,
    ) -> Sequential:
        """A Sequential of Dense layers holding ``coefs_``/``intercepts_`` on ``compute``.

        ``mean_weight``: the training rows' mean sample weight (see :func:`_sample_weights`).
        """
        # scikit-learn adds alpha/2 ||W||^2 / n_batch to each batch's loss (divided by the
        # batch's total weight, n_batch * mean_weight, with sample weights); L2(l2) adds
        # l2 ||W||^2
        l2 = self.alpha / (2.0 * batch_size * mean_weight)
        penalty = _regularizers.L2(l2) if self.alpha else None
        n_layers = len(self.coefs_)
        layers = []
        for i, W in enumerate(self.coefs_):
            last = i == n_layers - 1
            layers.append(
                _layers.Dense(
                    int(W.shape[1]),
                    _OUTPUT_ACTIVATIONS[self.out_activation_]
                    if last
                    else _ACTIVATIONS[self.activation],
                    input_dim=int(W.shape[0]) if i == 0 else None,
                    # the weights are coefs_/intercepts_, loaded below: nothing to draw
                    kernel_initializer="zeros",
                    kernel_regularizer=penalty,
                    name="output" if last else f"hidden_{i + 1}",
                )
            )
        model = Sequential(
            layers, backend=compute, dtype=self.dtype, seed=seed, name=type(self).__name__
        )
        # set_weights checks the shapes and puts the weights where the model keeps them
        pairs = zip(self.coefs_, self.intercepts_, strict=True)
        model.set_weights([a for W, b in pairs for a in (W, b)])
        return model

    def _store_weights(
        self, params: list[list[Array]], compute: _backend.Backend, place: _backend.Backend | None
    ) -> None:
        """coefs_/intercepts_ from ``[[W, b], ...]`` on ``compute``, as arrays of ``place``."""
        if place is None:
            move = compute.to_numpy
        elif _same_place(place, compute):
            move = lambda a: a  # noqa: E731  (already copies, on the right device)
        else:
            move = place.asarray
        self.coefs_ = [move(W) for W, _ in params]
        self.intercepts_ = [move(b) for _, b in params]

    def _initialize(self, layer_units: list[int], rs: np.random.RandomState, place) -> None:
        """Draw initial weights as scikit-learn does: U(-r, r), r = sqrt(6 / (fan_in + fan_out)).

        (r = sqrt(2 / (fan_in + fan_out)) for logistic units). Drawn on the host from the
        ``random_state``, so a seed gives scikit-learn's own initial weights.
        """
        self.n_iter_ = 0
        self.t_ = 0
        self.n_layers_ = len(layer_units)
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if self.early_stopping:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.best_loss_ = np.inf
            self.validation_scores_ = None
            self.best_validation_score_ = None
        factor = 2.0 if self.activation == "logistic" else 6.0
        to_place = (lambda a: a) if place is None else place.asarray
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in itertools.pairwise(layer_units):
            bound = math.sqrt(factor / (fan_in + fan_out))
            W = rs.uniform(-bound, bound, (fan_in, fan_out)).astype(self.dtype)
            b = rs.uniform(-bound, bound, fan_out).astype(self.dtype)
            self.coefs_.append(to_place(W))
            self.intercepts_.append(to_place(b))

    # -- fitting --------------------------------------------------------------------------------
    def _validate_fit_data(self, X, y, reset: bool, place):
        # "everything follows X": numeric y goes to X's library and device
        if place is not None and _backend.array_backend_name(y) is not None and _is_numeric(y):
            y = place.asarray(y)
        dtypes = (np.float64, np.float32) if place is None else [place.xp.float64, place.xp.float32]
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=True,
            y_numeric=isinstance(self, RegressorMixin),
            dtype=dtypes,
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if place is not None and isinstance(y, np.ndarray) and _is_numeric(y):
            y = place.asarray(y)
        return X, y

    def _fit(self, X, y, *, incremental: bool, classes=None, sample_weight=None):
        hidden = self._check_params()
        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: there is no held-out set "
                "across calls. Use fit, or set early_stopping=False."
            )
        fitted = hasattr(self, "coefs_")
        first_pass = not fitted or (not self.warm_start and not incremental)
        place = _dispatch_place(X)
        if not first_pass:
            self._check_same_place(X, "partial_fit" if incremental else "fit")
        X, y = self._validate_fit_data(X, y, reset=first_pass, place=place)
        weights = _check_weights(sample_weight, X.shape[0])
        compute = self._compute_backend(place)
        Y, n_outputs, out_activation, loss = self._encode_targets(
            y, first_pass, incremental, classes, place, compute
        )
        n_samples, n_features = X.shape
        layer_units = [n_features, *hidden, n_outputs]
        rs = check_random_state(self.random_state)
        if first_pass:
            self.n_outputs_ = n_outputs
            self.out_activation_ = out_activation
            self._initialize(layer_units, rs, place)
        elif [int(W.shape[0]) for W in self.coefs_] + [n_outputs] != layer_units:
            raise ValueError(
                f"The network was fitted with layer sizes "
                f"{[int(W.shape[0]) for W in self.coefs_] + [self.n_outputs_]}; the new data and "
                f"hidden_layer_sizes need {layer_units}. Refit with warm_start=False."
            )
        Xd = compute.asarray(X, compute.dtype(self.dtype))

        # early stopping: hold out a (stratified) validation fraction, split on the host
        validation = None
        if self.early_stopping:
            # as scikit-learn: stratified for binary labels only, so a seed gives its split
            stratify = None
            if isinstance(self, ClassifierMixin) and n_outputs == 1:
                stratify = compute.to_numpy(Y).reshape(-1)
            train, val = train_test_split(
                np.arange(n_samples),
                random_state=rs,
                test_size=float(self.validation_fraction),  # scikit-learn refuses np.float32
                stratify=stratify,
            )
            if val.shape[0] < 2:
                raise ValueError(
                    f"The validation set is too small: validation_fraction="
                    f"{self.validation_fraction} of {n_samples} samples leaves {val.shape[0]}. "
                    "Increase validation_fraction or the size of your dataset."
                )
            xp = compute.xp
            itrain = compute.asarray(train, compute.int_dtype)
            ival = compute.asarray(val, compute.int_dtype)
            validation = (xp.take(Xd, ival, axis=0), xp.take(Y, ival, axis=0))
            Xd, Y = xp.take(Xd, itrain, axis=0), xp.take(Y, itrain, axis=0)
            if weights is not None:  # split with the rows, as scikit-learn splits them
                w_val = compute.asarray(weights[val], compute.dtype(self.dtype))
                validation = (*validation, w_val)
                weights = weights[train]
        fit_weights, mean_weight = _sample_weights(weights)

        n_train = Xd.shape[0]
        if self.batch_size == "auto":
            batch_size = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn(
                    f"Got batch_size={self.batch_size} larger than the {n_train} training "
                    "samples; it is clipped to the number of samples.",
                    UserWarning,
                    stacklevel=3,
                )
            batch_size = min(int(self.batch_size), n_train)

        seed = int(rs.randint(np.iinfo(np.int32).max))
        model = self._network(compute, batch_size, seed, mean_weight)
        optimizer = getattr(self, "_optimizer", None)
        if not incremental or optimizer is None:
            optimizer = self._optimizer = self._make_optimizer()
        else:
            # an optimizer belongs to the one model it trains: this network gets a copy that
            # carries the state of the last partial_fit over, onto this network's device
            previous = optimizer
            optimizer = self._optimizer = _optimizers.get(previous.get_config())
            optimizer.iterations = previous.iterations
            optimizer.state = [
                {k: compute.asarray(v, model.dtype) for k, v in s.items()} for s in previous.state
            ]
        model.compile(loss=loss, optimizer=optimizer)
        monitor = _SklearnMonitor(self, n_train, validation)
        self.n_iter_ = 0
        diverged = None
        try:
            model.fit(
                Xd,
                Y,
                epochs=1 if incremental else int(self.max_iter),
                batch_size=batch_size,
                shuffle=bool(self.shuffle),
                verbose=0,
                callbacks=[monitor],
                sample_weight=fit_weights,
            )
        except NonFiniteLossError as exc:  # fit put back the weights of the epoch's start
            diverged = exc
        # early stopping keeps the weights of the best epoch
        params = monitor.best_params if monitor.best_params is not None else _copy_params(model)
        xp = compute.xp
        finite = [xp.all(xp.isfinite(a)) for pair in params for a in pair]
        self._store_weights(params, compute, place)
        if diverged is not None or not bool(xp.all(xp.stack(finite))):
            raise self._diverged(incremental, diverged) from diverged
        if not incremental and not monitor.converged and self.n_iter_ == self.max_iter:
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached and the "
                "optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _diverged(self, incremental: bool, cause: NonFiniteLossError | None) -> ValueError:
        """scikit-learn's error for a training that diverged, with this estimator's remedies.

        scikit-learn's MLP raises ``ValueError`` with this message when its weights become
        NaN or infinite; backprop's own error (``cause``) advises ``fit`` arguments such as
        ``optimizer=`` and ``callbacks=``, which the estimator does not take.
        """
        settings = f"solver={self.solver!r}, learning_rate_init={self.learning_rate_init!r}"
        if cause is None:  # the loss stayed finite, a weight did not
            what = f"The weights became NaN or infinite during training ({settings})"
        else:
            where = f"epoch {self.n_iter_ + 1} of at most max_iter={self.max_iter}"
            if incremental:
                where = "this partial_fit call"
            what = (
                f"The training loss became NaN or infinite in {where} ({settings}); the "
                "weights from before that epoch are kept"
            )
        remedies = "lower learning_rate_init"
        if self.solver == "sgd":
            remedies += ", lower momentum or use solver='adam'"
        return ValueError(
            "Solver produced non-finite parameter weights. The input data may contain large "
            f"values and need to be preprocessed. {what}. Scale X (e.g. with "
            f"sklearn.preprocessing.StandardScaler), {remedies}."
        )

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> _BaseMLP:
        """Fit the network to ``X`` and ``y`` (``max_iter`` epochs at most).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data: NumPy, or (with ``array_api_dispatch=True``) CuPy, torch, ...
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Class labels (any hashable values; a 0/1 indicator matrix for multilabel) or
            real targets.
        sample_weight : array-like of shape (n_samples,) or float, optional
            Each sample's weight (finite, >= 0, not all 0), as scikit-learn's MLP weighs
            it: each batch's loss and L2 term are divided by the batch's total weight (see
            the module's docstring). The early-stopping score is weighted too.

        Returns
        -------
        self
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    # -- inference ------------------------------------------------------------------------------
    def _check_same_place(self, X: Any, method: str) -> None:
        """Under array API dispatch, X must come from the library and device of the fit."""
        if not get_config()["array_api_dispatch"]:
            return
        fitted = _place_of(self.coefs_[0])
        given = _place_of(X)
        if _same_place(fitted, given):
            return
        have = "numpy" if fitted is None else repr(fitted)
        got = "numpy" if given is None else repr(given)
        raise ValueError(
            f"Inputs passed to {type(self).__name__}.{method}() must use the same namespace "
            f"and the same device as those passed to fit(): fitted on {have}, received X on "
            f"{got}. Move X there, or refit on data of the new library and device."
        )

    def _forward(self, X: Any, method: str) -> tuple[Array, _backend.Backend, Any, str]:
        """Validated X through the network.

        Returns the output (on the compute backend), that backend, the place the results go
        to (None: NumPy) and X's floating dtype, which the results take (as scikit-learn's).
        """
        check_is_fitted(self)
        self._check_same_place(X, method)
        place = _dispatch_place(X)
        dtypes = (np.float64, np.float32) if place is None else [place.xp.float64, place.xp.float32]
        X = validate_data(self, X, reset=False, dtype=dtypes)
        # the forward pass of the layers, on coefs_/intercepts_ (as scikit-learn's predict)
        compute = self._compute_backend(_place_of(self.coefs_[0]))
        xp, dtype = compute.xp, compute.dtype(self.dtype)
        hidden = _activations.get(_ACTIVATIONS[self.activation])
        output = _activations.get(_OUTPUT_ACTIVATIONS[self.out_activation_])
        a = compute.asarray(X, dtype)
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            z = a @ compute.asarray(W, dtype) + compute.asarray(b, dtype)
            a = (output if i == last else hidden).forward(z, xp)
        return a, compute, place, _float_name(X.dtype)

    @staticmethod
    def _deliver(a: Array, compute: _backend.Backend, place: Any, dtype: str | None) -> Any:
        """``a`` as an array of ``place`` (None: NumPy), of floating dtype ``dtype``."""
        if dtype is not None and _float_name(a.dtype) != dtype:
            a = compute.xp.astype(a, compute.dtype(dtype))
        return compute.to_numpy(a) if place is None else place.asarray(a)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.array_api_support = True
        return tags


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by backprop (scikit-learn's API and defaults).

    Binary problems get one sigmoid output unit, multiclass problems a softmax layer and
    multilabel problems (``y`` a 0/1 indicator matrix) one sigmoid unit per label; each is
    trained on the log-loss plus the L2 penalty ``alpha``.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Units of each hidden layer (``()`` gives a linear model).
    activation : {"relu", "tanh", "logistic", "identity"}, default="relu"
        Hidden-layer activation (``"logistic"`` is backprop's sigmoid, ``"identity"`` linear).
    solver : {"adam", "sgd"}, default="adam"
        ``"lbfgs"`` is not supported: fit raises ``ValueError``.
    alpha : float, default=1e-4
        L2 penalty: ``alpha / (2 * batch_size) * sum ||W||^2`` is added to each batch's loss.
    batch_size : int or "auto", default="auto"
        ``"auto"`` is ``min(200, n_samples)``.
    learning_rate : {"constant", "invscaling", "adaptive"}, default="constant"
        Schedule for ``solver="sgd"`` (as scikit-learn).
    learning_rate_init : float, default=1e-3
        Step size.
    power_t : float, default=0.5
        Exponent of ``"invscaling"``: ``lr = learning_rate_init / (t + 1) ** power_t`` after
        ``t`` samples.
    max_iter : int, default=200
        Epochs at most.
    shuffle : bool, default=True
        Reshuffle the samples each epoch.
    random_state : int, RandomState or None, default=None
        Seeds the initial weights (scikit-learn's draws), the shuffling and the validation split.
    tol : float, default=1e-4
        Smallest improvement of the loss (or validation score) that counts.
    verbose : bool or int, default=False
        Print the loss of each epoch.
    warm_start : bool, default=False
        Start ``fit`` from the weights of the previous fit.
    momentum : float, default=0.9
        Momentum of ``solver="sgd"``, in [0, 1).
    nesterovs_momentum : bool, default=True
        Nesterov's momentum for ``solver="sgd"``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified for binary ``y``, as
        scikit-learn) and stop when its accuracy stops improving; the best weights are kept.
    validation_fraction : float, default=0.1
        Fraction held out for early stopping.
    beta_1, beta_2 : float, default=0.9, 0.999
        Adam's moment decay rates.
    epsilon : float, default=1e-8
        Adam's epsilon.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    max_fun : int, default=15000
        scikit-learn's limit on L-BFGS loss evaluations. backprop has no L-BFGS, so it is only
        stored and checked (as scikit-learn does for ``"adam"`` and ``"sgd"``): scikit-learn's
        parameters carry over unchanged.
    backend : str, optional
        Where the network trains (``"numpy"``, ``"cupy"``, ``"torch"``, ``"jax"``,
        ``"array_api_strict"``, optionally ``"name:device"``). None: X's library under array
        API dispatch, else the current backprop backend.
    device : optional
        Device on that backend (``"cuda:1"``, ``"device1"``, ...).
    dtype : {"float32", "float64"}, default="float32"
        Floating dtype of the weights and of every computation (predictions are returned in
        X's floating dtype, as scikit-learn's).

    Attributes
    ----------
    classes_ : array of shape (n_classes,)
        The labels (``arange(n_labels)`` for multilabel ``y``).
    coefs_ : list of arrays of shape (n_units[i], n_units[i + 1])
        Weight matrices ``W`` of each layer, first to last.
    intercepts_ : list of arrays of shape (n_units[i + 1],)
        Bias vectors ``b`` of each layer.
    loss_ : float
        Training loss (with the penalty) of the last epoch.
    best_loss_ : float or None
        Lowest training loss seen (None with early stopping).
    loss_curve_ : list of float
        Training loss of each epoch.
    validation_scores_ : list of float or None
        Held-out accuracy of each epoch (early stopping only).
    best_validation_score_ : float or None
        Best held-out accuracy (early stopping only).
    t_ : int
        Training samples seen.
    n_iter_ : int
        Epochs run by the last call to fit (1 after partial_fit).
    n_layers_ : int
        Layers, input and output included.
    n_outputs_ : int
        Output units.
    out_activation_ : str
        ``"logistic"`` or ``"softmax"``.
    n_features_in_ : int
        Features seen by fit.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Column names, when X was a DataFrame with string column names.

    Examples
    --------
    >>> import numpy as np
    >>> from backprop.sklearn import MLPClassifier
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]] * 25)
    >>> y = np.array(["no", "yes", "yes", "no"] * 25)
    >>> clf = MLPClassifier((8,), activation="tanh", learning_rate_init=0.05, random_state=1)
    >>> clf.fit(X, y).predict([[0.0, 1.0], [1.0, 1.0]]).tolist()
    ['yes', 'no']
    """

    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, *, sample_weight: Any = None
    ) -> MLPClassifier:
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training data.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Its labels.
        classes : array-like of shape (n_classes,), optional
            Every class of the whole problem: required on the first call (unless ``y`` is a
            multilabel indicator matrix), optional afterwards.
        sample_weight : array-like of shape (n_samples,) or float, optional
            Each sample's weight, as in :meth:`fit`. Keyword-only: scikit-learn's
            ``partial_fit(X, y, sample_weight=None, classes=None)`` puts it third, where
            ``classes`` has been here.

        Returns
        -------
        self
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, classes=classes, sample_weight=sample_weight)

    # -- labels ---------------------------------------------------------------------------------
    def _encode_targets(self, y, first_pass, incremental, classes, place, compute):
        check_classification_targets(y)
        target = type_of_target(y)
        if target not in ("binary", "multiclass", "multilabel-indicator"):
            raise ValueError(
                f"MLPClassifier handles binary, multiclass and multilabel-indicator targets; "
                f"received a {target!r} target (y of shape {tuple(y.shape)})."
            )
        multilabel = target == "multilabel-indicator"
        if classes is not None and not multilabel:
            classes = unique_labels(_follow(classes, place))
        # the labels: new ones on a first pass, else those of the fit, which y must match
        if first_pass:
            if multilabel:
                k = int(y.shape[1])
                labels = np.arange(k) if place is None else place.xp.arange(k, device=place.device)
            elif classes is not None:
                labels = classes
            elif incremental:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            else:
                labels = unique_labels(y)
        else:
            labels = self.classes_
            if multilabel != self._multilabel:
                fitted_on = "a multilabel indicator" if self._multilabel else "a vector of labels"
                raise ValueError(
                    f"y is {'a multilabel indicator' if multilabel else 'a vector of labels'}, "
                    f"but the classifier was fitted on {fitted_on}."
                )
            if classes is not None and not _equal_labels(classes, labels):
                raise ValueError(
                    f"classes={_host(classes).tolist()} differs from classes_="
                    f"{_host(labels).tolist()} of the previous fit."
                )
            if self.warm_start and not incremental and not multilabel:
                seen = unique_labels(y)
                if not _equal_labels(seen, labels):
                    raise ValueError(
                        "warm_start can only be used where y has the same classes as in the "
                        f"previous call to fit: previously {_host(labels).tolist()}, y has "
                        f"{_host(seen).tolist()}."
                    )
        n_labels = int(labels.shape[0])
        float_dtype = compute.dtype(self.dtype)
        if multilabel:
            if y.shape[1] != n_labels:
                raise ValueError(
                    f"y has {y.shape[1]} labels but the classifier was fitted on {n_labels}."
                )
            Y, n_outputs, out, loss = compute.asarray(y, float_dtype), n_labels, "logistic", None
        else:
            if n_labels < 2:
                raise ValueError(
                    "MLPClassifier needs samples of at least 2 classes in y; received only one "
                    f"class: {_host(labels)[0]!r}."
                )
            idx = _encode(y, labels)
            if n_labels == 2:  # one sigmoid unit: P(classes_[1])
                Y, n_outputs, out, loss = compute.asarray(idx, float_dtype), 1, "logistic", None
            else:
                Y = compute.asarray(idx, compute.int_dtype)
                n_outputs, out, loss = n_labels, "softmax", "sparse_categorical_crossentropy"
        self.classes_, self._multilabel = labels, multilabel
        return Y, n_outputs, out, loss or _SummedBinaryCrossentropy()

    def _device_score(self, model, X, Y, w=None):
        xp = model.xp
        p = model.forward(X, training=False)
        if self.out_activation_ == "softmax":
            hit = xp.argmax(p, axis=1) == Y
        else:  # one sigmoid unit per label (a single one for binary y); all must be right
            hit = xp.all((p > 0.5) == (xp.reshape(Y, (Y.shape[0], -1)) > 0.5), axis=1)
        hit = xp.astype(hit, p.dtype)
        score = xp.mean(hit) if w is None else xp.sum(w * hit) / xp.sum(w)
        return float(model.backend.to_numpy(score))

    def predict(self, X: Any) -> Any:
        """Predicted labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : array of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_`` (a 0/1 int matrix for multilabel).
        """
        p, model_backend, place, _ = self._forward(X, "predict")
        xp = model_backend.xp
        if self._multilabel:
            return self._deliver(
                xp.astype(p > 0.5, model_backend.int_dtype), model_backend, place, None
            )
        if p.shape[1] == 1:
            idx = xp.astype(p[:, 0] > 0.5, model_backend.int_dtype)
        else:
            idx = xp.argmax(p, axis=1)
        if isinstance(self.classes_, np.ndarray):
            labels = self.classes_[model_backend.to_numpy(idx)]
            # numeric labels follow X; strings and other host labels stay on the host
            return labels if place is None or not _is_numeric(labels) else place.asarray(labels)
        owner = _backend.backend_of(self.classes_)
        labels = owner.xp.take(self.classes_, owner.asarray(idx), axis=0)
        return owner.to_numpy(labels) if place is None else place.asarray(labels)

    def predict_proba(self, X: Any) -> Any:
        """Class probabilities, columns in the order of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        proba : array of shape (n_samples, n_classes)
            Rows sum to 1 (multilabel: each entry is its label's own probability).
        """
        return self._proba(X, "predict_proba")

    def _proba(self, X: Any, method: str) -> Any:
        p, compute, place, dtype = self._forward(X, method)
        if p.shape[1] == 1 and not self._multilabel:
            p = compute.xp.concat([1.0 - p, p], axis=1)
        return self._deliver(p, compute, place, dtype)

    def predict_log_proba(self, X: Any) -> Any:
        """Logarithm of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        log_proba : array of shape (n_samples, n_classes)
            ``log(predict_proba(X))``.
        """
        proba = self._proba(X, "predict_log_proba")
        if isinstance(proba, np.ndarray):
            return np.log(proba)
        return _backend.backend_of(proba).xp.log(proba)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by backprop (scikit-learn's API and defaults).

    Linear output units (one per target column) trained on half the squared error plus the L2
    penalty ``alpha``. The parameters are those of :class:`MLPClassifier`; with early stopping
    the held-out score is R^2.

    Parameters
    ----------
    loss : {"squared_error"}, default="squared_error"
        The only loss implemented (scikit-learn's ``"poisson"`` is not). It is the first
        parameter, as in scikit-learn (>= 1.7): pass ``hidden_layer_sizes`` by keyword.
    hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate, \
learning_rate_init, power_t, max_iter, shuffle, random_state, tol, verbose, warm_start, \
momentum, nesterovs_momentum, early_stopping, validation_fraction, beta_1, beta_2, epsilon, \
n_iter_no_change, max_fun, backend, device, dtype
        As for :class:`MLPClassifier`.

    Attributes
    ----------
    coefs_ : list of arrays of shape (n_units[i], n_units[i + 1])
        Weight matrices ``W`` of each layer, first to last.
    intercepts_ : list of arrays of shape (n_units[i + 1],)
        Bias vectors ``b`` of each layer.
    loss_, best_loss_, loss_curve_, validation_scores_, best_validation_score_, t_, n_iter_, \
n_layers_, n_features_in_, feature_names_in_
        As for :class:`MLPClassifier` (validation scores are R^2).
    n_outputs_ : int
        Target columns.
    out_activation_ : str
        ``"identity"``.

    Examples
    --------
    >>> import numpy as np
    >>> from backprop.sklearn import MLPRegressor
    >>> X = np.linspace(-1, 1, 200).reshape(-1, 1)
    >>> Y = np.hstack([X, -2 * X])                       # two outputs
    >>> reg = MLPRegressor(hidden_layer_sizes=(16,), learning_rate_init=0.01, random_state=0)
    >>> reg = reg.fit(X, Y)
    >>> reg.predict(X[:3]).shape, reg.score(X, Y) > 0.95
    ((3, 2), True)
    """

    def __init__(
        self,
        loss: str = "squared_error",
        hidden_layer_sizes: Any = (100,),
        activation: str = "relu",
        *,
        solver: str = "adam",
        alpha: float = 0.0001,
        batch_size: int | str = "auto",
        learning_rate: str = "constant",
        learning_rate_init: float = 0.001,
        power_t: float = 0.5,
        max_iter: int = 200,
        shuffle: bool = True,
        random_state: Any = None,
        tol: float = 1e-4,
        verbose: bool | int = False,
        warm_start: bool = False,
        momentum: float = 0.9,
        nesterovs_momentum: bool = True,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-8,
        n_iter_no_change: int | float = 10,
        max_fun: int = 15000,
        backend: str | None = None,
        device: Any = None,
        dtype: str = "float32",
    ):
        # scikit-learn's order (its signature since 1.7): loss first, backprop's extras last
        self.loss = loss
        super().__init__(
            hidden_layer_sizes=hidden_layer_sizes,
            activation=activation,
            solver=solver,
            alpha=alpha,
            batch_size=batch_size,
            learning_rate=learning_rate,
            learning_rate_init=learning_rate_init,
            power_t=power_t,
            max_iter=max_iter,
            shuffle=shuffle,
            random_state=random_state,
            tol=tol,
            verbose=verbose,
            warm_start=warm_start,
            momentum=momentum,
            nesterovs_momentum=nesterovs_momentum,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            n_iter_no_change=n_iter_no_change,
            max_fun=max_fun,
            backend=backend,
            device=device,
            dtype=dtype,
        )

    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> MLPRegressor:
        """One epoch over ``(X, y)``, continuing from the current weights and optimizer state.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A batch of training data.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Its targets.
        sample_weight : array-like of shape (n_samples,) or float, optional
            Each sample's weight, as in :meth:`fit`.

        Returns
        -------
        self
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def _check_params(self) -> list[int]:
        if not (isinstance(self.loss, str) and self.loss == "squared_error"):
            hint = ""
            if _looks_like_sizes(self.loss):
                # MLPRegressor((16,)): the layer sizes given where scikit-learn >= 1.7 has loss
                hint = (
                    " loss is the first parameter, as in scikit-learn: pass the layer sizes by "
                    f"keyword, MLPRegressor(hidden_layer_sizes={self.loss!r})."
                )
            raise ValueError(
                f"loss must be 'squared_error' (the only loss backprop.sklearn implements), "
                f"received loss={self.loss!r}.{hint}"
            )
        return super()._check_params()

    def _encode_targets(self, y, first_pass, incremental, classes, place, compute):
        Y = compute.asarray(y, compute.dtype(self.dtype))
        if Y.ndim == 1:
            Y = compute.xp.reshape(Y, (-1, 1))
        return Y, int(Y.shape[1]), "identity", _HalfSquaredError()

    def _device_score(self, model, X, Y, w=None):
        # R^2 per output, averaged; a constant target scores 1 if fitted exactly, else 0
        xp = model.xp
        p = model.forward(X, training=False)
        # weighted as scikit-learn's r2_score: the sums and the mean of Y by w
        w = xp.ones_like(p[:, 0]) if w is None else w
        w = xp.reshape(w, (-1, 1))
        mean = xp.sum(w * Y, axis=0) / xp.sum(w)
        ss_res = xp.sum(w * (Y - p) ** 2, axis=0)
        ss_tot = xp.sum(w * (Y - mean) ** 2, axis=0)
        safe = xp.where(ss_tot > 0, ss_tot, 1.0)
        r2 = xp.where(ss_tot > 0, 1.0 - ss_res / safe, xp.where(ss_res == 0, 1.0, 0.0))
        return float(model.backend.to_numpy(xp.mean(r2)))

    def predict(self, X: Any) -> Any:
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        y : array of shape (n_samples,) or (n_samples, n_outputs)
            One column per target of the fit (1-D for a single target).
        """
        p, compute, place, dtype = self._forward(X, "predict")
        if p.shape[1] == 1:
            p = compute.xp.reshape(p, (-1,))
        return self._deliver(p, compute, place, dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


# ---------------------------------------------------------------------------------------------
# Label helpers


def _follow(labels: Any, place: _backend.Backend | None) -> Any:
    """User-given labels, moved to X's library and device when numeric (as y is)."""
    if place is None:
        return labels
    if _backend.array_backend_name(labels) is None:
        labels = np.asarray(labels)
    return place.asarray(labels) if _is_numeric(labels) else labels


def _check_weights(sample_weight: Any, n: int) -> np.ndarray | None:
    """``sample_weight`` as n float64 weights on the host, checked (None stays None).

    A number weighs every sample alike, as scikit-learn's ``_check_sample_weight``. Weights
    must be finite and >= 0 (a negative weight makes the objective unbounded below) and not
    all 0 (scikit-learn divides each batch's objective by its total weight).
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        w = np.full(n, float(sample_weight))
    else:
        # an array of another library (torch, CuPy, ...) comes to the host first
        named = _backend.array_backend_name(sample_weight) is not None
        try:
            w = np.asarray(_host(sample_weight) if named else sample_weight, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                "sample_weight must be numbers, one per sample; received "
                f"{type(sample_weight).__name__} that does not convert to float: {exc}"
            ) from None
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"sample_weight must be 1-D with one weight per sample, shape ({n},); received "
            f"shape {w.shape}."
        )
    if not np.all(np.isfinite(w)):
        i = int(np.argmin(np.isfinite(w)))
        raise ValueError(f"sample_weight must be finite; sample {i} is {w[i]}.")
    if np.any(w < 0):
        i = int(np.argmax(w < 0))
        raise ValueError(f"sample_weight must be >= 0; sample {i} is {w[i]}.")
    if not np.any(w > 0):
        raise ValueError(
            "sample_weight must not sum to 0: the sample weights are all zero, so every "
            "sample would weigh nothing. Give some samples a positive weight."
        )
    return w


def _sample_weights(w: np.ndarray | None) -> tuple[np.ndarray | None, float]:
    """The weights ``fit`` gets and the training rows' mean weight.

    ``Sequential.fit`` divides a batch's weighted loss by its rows (Keras's
    ``sum_over_batch_size``); scikit-learn divides it, and the L2 term, by the batch's total
    weight. Weights divided by their mean give scikit-learn's loss term for a batch that
    weighs on average as the data; the L2 term is divided by the mean in ``_network``.
    Weights all equal (ones included) then are all 1: the plain, unweighted steps.
    """
    if w is None:
        return None, 1.0
    mean = float(np.mean(w))
    if mean == 0:
        raise ValueError(
            "The training samples' sample weights are all zero (early stopping held out "
            "every weighted sample): give more samples a positive weight."
        )
    scaled = w / mean
    return (None if np.all(scaled == 1.0) else scaled), mean


def _host(a: Any) -> np.ndarray:
    return a if isinstance(a, np.ndarray) else _backend.to_numpy(a)


def _equal_labels(a: Any, b: Any) -> bool:
    a, b = _host(a), _host(b)
    return a.shape == b.shape and bool(np.all(a == b))


def _encode(y: Any, classes: Any) -> Any:
    """Indices of ``y`` in the sorted ``classes`` (same library as y); unknown labels raise."""
    if isinstance(y, np.ndarray) or isinstance(classes, np.ndarray):
        y_host, c_host = _host(y), _host(classes)
        idx = np.searchsorted(c_host, y_host)
        found = np.take(c_host, np.minimum(idx, c_host.shape[0] - 1)) == y_host
        if not bool(np.all(found)):
            unknown = np.unique(y_host[~found])
            raise ValueError(f"y has labels {unknown.tolist()} not in classes_ {c_host.tolist()}.")
        return idx
    owner = _backend.backend_of(classes)
    xp = owner.xp
    y = owner.asarray(y)
    idx = xp.searchsorted(classes, y)
    found = xp.take(classes, xp.clip(idx, 0, classes.shape[0] - 1), axis=0) == y
    if not bool(xp.all(found)):
        raise ValueError(f"y has labels not in classes_ {_host(classes).tolist()}.")
    return idx


def _copy_params(model: Sequential) -> list[list[Array]]:
    """Copies of each layer's ``[W, b]``, on the model's device."""
    xp = model.xp
    return [[xp.asarray(layer.params[k], copy=True) for k in ("W", "b")] for layer in model.layers]
