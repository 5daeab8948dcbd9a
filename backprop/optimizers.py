"""Optimizers: W <- update(W, dW), with Keras's defaults and update rules.

Each optimizer's ``update`` is its paper's equations, written with the in-place operators of the
Array API standard (``W -= lr * dW``, ``m *= beta1``): NumPy, CuPy and torch update the arrays
in place, with no temporaries for the results, while immutable arrays (JAX) fall back to
rebinding; either way ``update`` returns the updated array and stores the updated state, so the
caller keeps what is returned. Like PyTorch's ``step()`` and Keras's ``apply()``, ``apply``
therefore updates mutable parameters in place. The step counter ``t`` and the learning rate live
on the host, so schedules never cost a device round trip; the state (``m``, ``v``, ...) lives on
the parameters' device.

Every optimizer takes Keras 3's arguments under Keras 3's names (``beta_1``, ``beta_2``,
``epsilon``, ``weight_decay``, ...); the older spellings ``beta1``, ``beta2`` and ``lr`` are
accepted as aliases, and configs store Keras's spelling.

Decoupled weight decay (``weight_decay=``, any optimizer, as Keras 3): before each update,
``W <- W - lr * weight_decay * W`` (Loshchilov & Hutter); ``AdamW`` is ``Adam`` with a default
decay of 0.004.

Gradient clipping (all on the device, no host synchronisation):

- ``clipvalue``: each gradient entry clipped to [-c, c];
- ``clipnorm``: each gradient array rescaled to norm at most c;
- ``global_clipnorm``: all gradients rescaled together to a joint norm at most c.

Examples
--------
>>> import array_api_compat.numpy as xp
>>> opt = SGD(learning_rate=0.1)
>>> opt.apply([xp.asarray([1.0])], [xp.asarray([2.0])])
[array([0.8])]
"""

from __future__ import annotations

import difflib
import functools
import inspect
import math
from typing import Any, ClassVar

from array_api_compat import array_namespace
from array_api_compat import device as _device

from . import backend as _backend
from . import schedules as _schedules
from ._checks import as_float, check_bool
from .registry import build

Array = Any


def _check_number(value: Any, what: str, low: float = 0.0, low_open: bool = False) -> float:
    """``value`` as a Python float (NumPy scalars accepted, so configs stay JSON-able)."""
    number = as_float(value)
    if number is None or math.isnan(number):
        raise TypeError(f"{what} must be a number, received {what}={value!r}.")
    if number < low or (low_open and number == low) or math.isinf(number):
        bound = f"> {low}" if low_open else f">= {low}"
        raise ValueError(f"{what} must be {bound}, received {what}={value!r}.")
    return number


def _check_unit(value: Any, what: str) -> float:
    """A decay rate or momentum: a number in [0, 1)."""
    number = _check_number(value, what)
    if number >= 1:
        raise ValueError(f"{what} must be in [0, 1), received {what}={value!r}.")
    return number


def _takes(cls: type) -> list[str]:
    """The arguments ``cls`` takes, under their canonical (Keras) names.

    Read from the signatures of ``cls`` and of the classes it inherits from (the keywords they
    pass on with ``**kw``), most specific first.
    """
    takes: dict[str, None] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for p in inspect.signature(vars(klass)["__init__"]).parameters.values():
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
                takes.setdefault(p.name)
    return list(takes)


def _alias_note(cls: type) -> str:
    aliases = getattr(cls, "_aliases", {})
    if not aliases:
        return ""
    pairs = ", ".join(f"{old} for {new}" for old, new in aliases.items())
    return f" (aliases: {pairs})"


def _unexpected_argument(cls: type, name: str) -> TypeError:
    """The error for ``cls(name=...)``: what ``cls`` takes, and the closest name if one is close."""
    takes = _takes(cls)
    close = difflib.get_close_matches(name, takes, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return TypeError(
        f"{cls.__name__}() got an unexpected argument {name!r}{hint} "
        f"{cls.__name__} takes {', '.join(takes)}{_alias_note(cls)}."
    )


def _accepting_aliases(init: Any) -> Any:
    """``init`` with the aliases of its class's arguments (``beta1``) renamed (``beta_1``).

    Both spellings of one argument at once (by keyword, or one of them by position) is a
    TypeError rather than one silently winning.
    """
    params = list(inspect.signature(init).parameters.values())[1:]  # without self
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    @functools.wraps(init)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        aliases = type(self)._aliases
        if any(k in aliases for k in kwargs):
            given = set(positional[: len(args)]) | set(kwargs)
            renamed = {}
            for key, value in kwargs.items():
                new = aliases.get(key, key)
                if new != key and new in given:
                    cls = type(self).__name__
                    raise TypeError(
                        f"{cls}() got both {new!r} and its alias {key!r}; pass only one "
                        f"(configs store {new!r}, Keras's spelling)."
                    )
                renamed[new] = value
            kwargs = renamed
        init(self, *args, **kwargs)

    wrapper._accepts_aliases = True  # type: ignore[attr-defined]
    return wrapper


class Optimizer:
    """Base class.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule
        Step size, or a schedule ``step -> lr`` (``lr`` is accepted as an alias).
    weight_decay : float, optional
        Decoupled weight decay (Keras 3's, Loshchilov & Hutter's): each step first does
        ``W <- W - lr * weight_decay * W``, then the optimizer's update. None (the default)
        or 0 for none.
    clipnorm, clipvalue, global_clipnorm : float, optional
        Gradient clipping (see the module docstring).

    Raises
    ------
    TypeError
        For an argument the optimizer does not take (the message lists those it takes and
        suggests the closest: ``Adam(beta_3=...)``: did you mean ``beta_2``?), or for an
        argument given under both its spellings (``Adam(beta_1=0.9, beta1=0.8)``).

    Attributes
    ----------
    iterations : int
        Steps taken so far (the ``t`` of the update rules is ``iterations + 1``).
    state : list[dict[str, Array]]
        Per-parameter state arrays, aligned with the parameter list.
    """

    name = "optimizer"
    state_names: tuple[str, ...] = ()
    # older spellings -> Keras's (the canonical one, stored in get_config)
    _aliases: ClassVar[dict[str, str]] = {"lr": "learning_rate"}

    def __init_subclass__(cls, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        init = vars(cls).get("__init__")
        if init is not None and not getattr(init, "_accepts_aliases", False):
            cls.__init__ = _accepting_aliases(init)

    @_accepting_aliases
    def __init__(
        self,
        learning_rate: float | _schedules.LearningRateSchedule = 0.001,
        *,
        weight_decay: float | None = None,
        clipnorm: float | None = None,
        clipvalue: float | None = None,
        global_clipnorm: float | None = None,
        **unexpected: Any,
    ):
        if unexpected:  # Python's own message would name Optimizer.__init__, not the class
            raise _unexpected_argument(type(self), next(iter(unexpected)))
        if isinstance(learning_rate, dict):
            learning_rate = _schedules.get(learning_rate)
        if not isinstance(learning_rate, _schedules.LearningRateSchedule):
            learning_rate = _check_number(learning_rate, "learning_rate", 0.0, low_open=True)
        self.learning_rate = learning_rate
        self.weight_decay = (
            None if weight_decay is None else _check_number(weight_decay, "weight_decay")
        )
        self.clipnorm = None if clipnorm is None else _check_number(clipnorm, "clipnorm", 0, True)
        self.clipvalue = (
            None if clipvalue is None else _check_number(clipvalue, "clipvalue", 0, True)
        )
        self.global_clipnorm = (
            None
            if global_clipnorm is None
            else _check_number(global_clipnorm, "global_clipnorm", 0, True)
        )
        clips = [c for c in (clipnorm, clipvalue, global_clipnorm) if c is not None]
        if len(clips) > 1:
            raise ValueError(
                "Set at most one of clipnorm, clipvalue and global_clipnorm (as Keras); received "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}."
            )
        self.iterations = 0
        self.state: list[dict[str, Array]] = []

    # -- the step ---------------------------------------------------------------------------
    def current_learning_rate(self) -> float:
        """The learning rate the next step will use.

        Returns
        -------
        float
            The constant rate, or the schedule's value at ``iterations``.
        """
        if isinstance(self.learning_rate, _schedules.LearningRateSchedule):
            return float(self.learning_rate(self.iterations))
        return self.learning_rate

    def learning_rates(self, steps: int) -> list[float]:
        """The learning rates of the next ``steps`` steps (host floats).

        Parameters
        ----------
        steps : int
            How many steps ahead.

        Returns
        -------
        list of float
            The constant rate ``steps`` times, or the schedule's values at ``iterations``,
            ``iterations + 1``, ...
        """
        if isinstance(self.learning_rate, _schedules.LearningRateSchedule):
            return [float(self.learning_rate(self.iterations + i)) for i in range(steps)]
        return [float(self.learning_rate)] * steps

    def build(self, params: list[Array]) -> None:
        """Create zero state arrays like ``params`` (on their device).

        Parameters
        ----------
        params : list of arrays
            The parameters the optimizer will update, in order.
        """
        self.state = []
        for W in params:
            xp = array_namespace(W)
            self.state.append({k: xp.zeros_like(W) for k in self.state_names})
        self._init_state(params)

    def _init_state(self, params: list[Array]) -> None:
        """Hook for state that does not start at zero."""

    def apply(self, params: list[Array], grads: list[Array], xp: Any = None) -> list[Array]:
        """One step: returns the updated parameters (updated in place where arrays are mutable).

        Parameters
        ----------
        params, grads : list of arrays
            Aligned lists; ``grads[i]`` has the shape of ``params[i]``.
        xp : namespace, optional
            Their namespace (looked up once from the first array when omitted).

        Returns
        -------
        list of arrays
            The new parameters, ``params[i]``'s shape each.

        Raises
        ------
        ValueError
            If ``params`` and ``grads`` differ in length.
        """
        if len(params) != len(grads):
            raise ValueError(
                f"Expected as many gradients as parameters, received {len(grads)} gradients "
                f"for {len(params)} parameters."
            )
        xp = xp or array_namespace(params[0])
        if len(self.state) != len(params):
            self.build(params)
        lr = self.current_learning_rate()
        self.iterations += 1
        t = self.iterations
        new = self.step(params, grads, self.state, lr, t, xp)
        if t % self.flush_every == 0:
            self._flush_subnormals(xp)
        return new

    def step(
        self, params: list[Array], grads: list[Array], state: list[dict], lr: Any, t: Any, xp: Any
    ) -> list[Array]:
        """Clip, decay (``weight_decay``), then update every parameter with its state.

        The pure core of :meth:`apply`: the host bookkeeping (the step counter, the schedule,
        the subnormal flush) stays in ``apply``, so ``lr`` and ``t`` may be traced scalars of a
        compiled step (JAX).

        Parameters
        ----------
        params, grads : list of arrays
            Aligned lists of parameters and their gradients.
        state : list of dict
            One state dict per parameter (updated).
        lr : float or 0-d array
            Learning rate of this step.
        t : int or 0-d array
            Step number, counted from 1.
        xp : namespace
            The arrays' namespace.

        Returns
        -------
        list of arrays
            The updated parameters.
        """
        grads = self._clip(grads, xp)
        if self.weight_decay:  # decoupled, before the update (Keras 3, torch's AdamW)
            params = [self._decay(W, lr) for W in params]
        pairs = zip(params, grads, state, strict=True)
        return [self.update(W, dW, s, lr, t, xp) for W, dW, s in pairs]

    def _decay(self, W: Array, lr: Any) -> Array:
        """``W - lr * weight_decay * W``, in place where the namespace allows it."""
        W *= 1.0 - lr * self.weight_decay
        return W

    # Moments of parameters whose gradient stays 0 (dead units) decay geometrically into the
    # subnormal range, and squares of tiny gradients land there, where CPU arithmetic is 10-100x
    # slower; they carry no information. Every 8 steps: measured on the seed net in float32,
    # epoch 100 ran 2.4x slower than epoch 5 when flushing every 64 steps, 1.0x every 8.
    flush_every = 8

    def _flush_subnormals(self, xp: Any, state: list[dict] | None = None) -> None:
        for s in self.state if state is None else state:
            for k, v in s.items():
                tiny = xp.finfo(v.dtype).smallest_normal
                # a multiply by the mask, not where(..., 0.0, v): 4-6x faster in NumPy; in
                # place where arrays are mutable (a recorded step holds their addresses)
                v *= xp.astype(xp.abs(v) >= tiny, v.dtype)
                s[k] = v

    def update(self, W: Array, dW: Array, s: dict[str, Array], lr: float, t: int, xp: Any) -> Array:
        """The update rule for one parameter; rebinds the entries of its state dict ``s``.

        Parameters
        ----------
        W : array, shape (d_in, d_out) or (d_out,)
            The parameter (any shape); updated in place where the namespace allows it.
        dW : array, the shape of ``W``
            Its gradient, clipped.
        s : dict of str to array
            Its state arrays (the shape of ``W`` each), keyed by ``state_names``.
        lr : float
            The learning rate of this step.
        t : int
            The step number, from 1.
        xp : namespace
            The Array API namespace of ``W``.

        Returns
        -------
        array, the shape of ``W``
            The updated parameter.
        """
        raise NotImplementedError

    def _clip(self, grads: list[Array], xp: Any) -> list[Array]:
        if self.clipvalue is not None:
            c = self.clipvalue
            grads = [xp.clip(g, -c, c) for g in grads]
        if self.clipnorm is not None:
            c = self.clipnorm
            grads = [g * (c / xp.maximum(xp.sqrt(xp.sum(g * g)), c)) for g in grads]
        if self.global_clipnorm is not None:
            c = self.global_clipnorm
            norm = xp.sqrt(sum(xp.sum(g * g) for g in grads))
            scale = c / xp.maximum(norm, c)
            grads = [g * scale for g in grads]
        return grads

    # -- description ------------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments as JSON-able values (schedules as their config dicts).

        Returns
        -------
        dict
            ``{"name": ...}`` plus the constructor arguments.
        """
        lr = self.learning_rate
        config = {
            "name": self.name,
            "learning_rate": lr.get_config() if hasattr(lr, "get_config") else lr,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "clipvalue": self.clipvalue,
            "global_clipnorm": self.global_clipnorm,
        }
        config.update({k: getattr(self, k) for k in self._hyper})
        return config

    _hyper: tuple[str, ...] = ()

    def __repr__(self) -> str:
        items = self.get_config().items()
        args = ", ".join(f"{k}={v!r}" for k, v in items if k != "name" and v is not None)
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum (Keras's form).

    m = momentum * m - lr * dW
    W = W + m                                   (classical)
    W = W + momentum * m - lr * dW              (Nesterov)
    Without momentum: W = W - lr * dW.  Defaults: lr 0.01, momentum 0.

    ``weight_decay`` is decoupled (Keras 3): ``W = W - lr * weight_decay * W`` before the
    step. torch.optim.SGD's ``weight_decay`` is an L2 penalty added to the gradient
    (``dW + weight_decay * W``) that then enters the momentum buffer: the same steps without
    momentum, different ones with it.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.01
        Step size, or a schedule.
    momentum : float, default 0.0
        Momentum coefficient, in [0, 1).
    nesterov : bool, default False
        Whether to use Nesterov momentum.
    **kw
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` or ``lr``, as for
        :class:`Optimizer`.

    Raises
    ------
    ValueError
        If ``momentum`` is not in [0, 1).
    """

    name = "sgd"
    _hyper = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum: float = 0.0, nesterov: bool = False, **kw):
        super().__init__(learning_rate, **kw)
        self.momentum = _check_unit(momentum, "momentum")
        self.nesterov = check_bool(nesterov, "nesterov")
        self.state_names = ("m",) if self.momentum else ()

    def update(self, W, dW, s, lr, t, xp):
        if not self.momentum:
            W -= lr * dW
            return W
        fused = _backend.fused(xp, "sgd_momentum", W, dW, s["m"])
        if fused is not None:  # the lines below in one kernel (CuPy)
            fused(dW, lr, self.momentum, self.nesterov, W, s["m"])
            return W
        m = s["m"]
        m *= self.momentum
        m -= lr * dW
        s["m"] = m
        if self.nesterov:
            W += self.momentum * m - lr * dW
        else:
            W += m
        return W


class RMSprop(Optimizer):
    """RMSprop (Keras's form; lr 1e-3, rho 0.9, momentum 0, eps 1e-7).

    v = rho * v + (1 - rho) * dW^2
    step = lr * dW / sqrt(v + eps)
    W = W - step                                (momentum 0)
    m = momentum * m + step;  W = W - m         (momentum > 0)
    centered=True also tracks g = rho * g + (1 - rho) * dW and uses v - g^2 for v.

    Keras puts eps under the square root and the learning rate inside the momentum buffer;
    torch.optim.RMSprop adds eps to the square root and multiplies the buffer by lr (the same
    steps for eps = 0 and a constant learning rate).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        Step size, or a schedule.
    rho : float, default 0.9
        Decay rate of the moving averages.
    momentum : float, default 0.0
        Momentum coefficient, in [0, 1) (0: no momentum buffer is kept).
    epsilon : float, default 1e-7
        Added under the square root for stability.
    centered : bool, default False
        Whether to normalize by the centered second moment ``v - g^2``.
    **kw
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` or ``lr``, as for
        :class:`Optimizer`.

    Raises
    ------
    ValueError
        If ``rho`` or ``momentum`` is not in [0, 1).
    """

    name = "rmsprop"
    _hyper = ("rho", "momentum", "epsilon", "centered")

    def __init__(
        self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, **kw
    ):
        super().__init__(learning_rate, **kw)
        self.rho = _check_unit(rho, "rho")
        self.momentum = _check_unit(momentum, "momentum")
        self.epsilon = _check_number(epsilon, "epsilon")
        self.centered = check_bool(centered, "centered")
        self.state_names = ("v",) + ("g",) * self.centered + ("m",) * bool(self.momentum)

    def update(self, W, dW, s, lr, t, xp):
        v = s["v"]
        v *= self.rho
        v += (1.0 - self.rho) * (dW * dW)
        s["v"] = v
        if self.centered:
            g = s["g"]
            g *= self.rho
            g += (1.0 - self.rho) * dW
            s["g"] = g
            v = v - g * g
        step = lr * dW / xp.sqrt(v + self.epsilon)
        if self.momentum:  # Keras's form: the learning rate goes into the buffer
            m = s["m"]
            m *= self.momentum
            m += step
            s["m"] = step = m
        W -= step
        return W


class Adagrad(Optimizer):
    """Adagrad (Keras's form; lr 1e-3, initial accumulator 0.1, eps 1e-7).

    v = v + dW^2
    W = W - lr * dW / sqrt(v + eps)

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        Step size, or a schedule.
    initial_accumulator_value : float, default 0.1
        Starting value of the accumulated squared gradients.
    epsilon : float, default 1e-7
        Added to the denominator for stability.
    **kw
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` or ``lr``, as for
        :class:`Optimizer`.
    """

    name = "adagrad"
    state_names = ("v",)
    _hyper = ("initial_accumulator_value", "epsilon")

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kw):
        super().__init__(learning_rate, **kw)
        self.initial_accumulator_value = _check_number(
            initial_accumulator_value, "initial_accumulator_value"
        )
        self.epsilon = _check_number(epsilon, "epsilon")

    def _init_state(self, params):
        for s in self.state:
            s["v"] = s["v"] + self.initial_accumulator_value

    def update(self, W, dW, s, lr, t, xp):
        v = s["v"]
        v += dW * dW
        s["v"] = v
        W -= lr * dW / xp.sqrt(v + self.epsilon)
        return W


class _Moments(Optimizer):
    """The Adam family's arguments and moments.

    ``beta_1``, ``beta_2`` (aliases ``beta1``, ``beta2``) and ``epsilon``.
    """

    _aliases: ClassVar[dict[str, str]] = {
        **Optimizer._aliases,
        "beta1": "beta_1",
        "beta2": "beta_2",
    }
    _hyper: tuple[str, ...] = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kw):
        super().__init__(learning_rate, **kw)
        self.beta_1 = _check_unit(beta_1, "beta_1")
        self.beta_2 = _check_unit(beta_2, "beta_2")
        self.epsilon = _check_number(epsilon, "epsilon")

    # the spellings before Keras's, kept for code that reads or sets them
    beta1 = property(
        lambda self: self.beta_1,
        lambda self, value: setattr(self, "beta_1", value),
        doc="Alias of ``beta_1``.",
    )
    beta2 = property(
        lambda self: self.beta_2,
        lambda self, value: setattr(self, "beta_2", value),
        doc="Alias of ``beta_2``.",
    )

    def _moments(self, dW, s):
        m, v = s["m"], s["v"]
        m *= self.beta_1
        m += (1.0 - self.beta_1) * dW
        v *= self.beta_2
        g2 = dW * dW  # one temporary, scaled in place: on large nets each costs a memory pass
        g2 *= 1.0 - self.beta_2
        v += g2
        s["m"], s["v"] = m, v
        return m, v


class Adam(_Moments):
    """Adam (Kingma & Ba, in Keras's form; lr 1e-3, beta_1 0.9, beta_2 0.999, eps 1e-7).

    m = beta_1 * m + (1 - beta_1) * dW
    v = beta_2 * v + (1 - beta_2) * dW^2
    v_hat = max(v_hat, v)                       (amsgrad=True; then v_hat replaces v below)
    W = W - lr_t * m / (sqrt(v) + eps),   lr_t = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)

    Folding the bias corrections m / (1 - beta_1^t), v / (1 - beta_2^t) into lr_t is the
    paper's "efficient version" (and Keras's): eps then sits beside sqrt(v) instead of beside
    the bias-corrected sqrt(v / (1 - beta_2^t)), where torch.optim.Adam puts it (the same
    steps for eps = 0). With amsgrad, Keras and torch both keep the largest uncorrected v and
    correct it with this step's 1 - beta_2^t.

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        Step size, or a schedule.
    beta_1 : float, default 0.9
        Decay rate of the first moment ``m`` (alias ``beta1``).
    beta_2 : float, default 0.999
        Decay rate of the second moment ``v`` (alias ``beta2``).
    epsilon : float, default 1e-7
        Added to ``sqrt(v)`` for stability.
    amsgrad : bool, default False
        Whether to divide by the largest ``v`` so far (Reddi et al.'s AMSGrad).
    **kw
        ``weight_decay``, ``clipnorm``, ``clipvalue``, ``global_clipnorm`` or ``lr``, as for
        :class:`Optimizer`.

    Raises
    ------
    ValueError
        If ``beta_1`` or ``beta_2`` is not in [0, 1).
    """

    name = "adam"
    _hyper = ("beta_1", "beta_2", "epsilon", "amsgrad")

    def __init__(
        self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, **kw
    ):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, **kw)
        self.amsgrad = check_bool(amsgrad, "amsgrad")
        self.state_names = ("m", "v", "v_hat") if self.amsgrad else ("m", "v")

    def update(self, W, dW, s, lr, t, xp):
        # ** 0.5, not math.sqrt: t may be a traced scalar when the step is compiled (JAX)
        lr_t = lr * (1.0 - self.beta_2**t) ** 0.5 / (1.0 - self.beta_1**t)
        # AMSGrad has no fused kernel: it runs the portable code below on CuPy too
        fused = None if self.amsgrad else _backend.fused(xp, "adam", W, dW, s["m"], s["v"])
        if fused is not None:  # the lines below in one kernel (CuPy)
            b1, b2 = self.beta_1, self.beta_2
            fused(dW, lr_t, b1, 1.0 - b1, b2, 1.0 - b2, self.epsilon, W, s["m"], s["v"])
            return W
        m, v = self._moments(dW, s)
        if self.amsgrad:
            s["v_hat"] = v = xp.maximum(s["v_hat"], v)
        denom = xp.sqrt(v)
        denom += self.epsilon
        step = m / denom
        step *= lr_t
        W -= step  # W - lr_t * m / (sqrt(v) + eps), with two temporaries instead of four
        return W


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter; Keras's default decay 0.004).

    W = W - lr * weight_decay * W, then the Adam step: ``Adam(weight_decay=...)`` with
    Keras's default, as Keras 3 and torch.optim.AdamW (whose eps sits where
    torch.optim.Adam's does, see :class:`Adam`).

    Parameters
    ----------
    learning_rate : float or LearningRateSchedule, default 0.001
        Step size, or a schedule.
    weight_decay : float, default 0.004
        Decoupled decay rate, >= 0.
    beta_1, beta_2, epsilon, amsgrad
        As for :class:`Adam`.
    **kw
        ``clipnorm``, ``clipvalue``, ``global_clipnorm`` or ``lr``, as for :class:`Optimizer`.

    Raises
    ------
    ValueError
        If ``weight_decay`` is None or negative.
    """

    name = "adamw"

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=0.004,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-7,
        amsgrad=False,
        **kw,
    ):
        if weight_decay is None:  # as Keras: AdamW without a decay is Adam
            raise ValueError(
                "AdamW needs a weight_decay (a number >= 0), received weight_decay=None; "
                "use Adam for no decay."
            )
        super().__init__(
            learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay=weight_decay, **kw
        )


class Adamax(_Moments):
    """Adamax, Adam's infinity-norm variant (lr 1e-3, beta_1 0.9, beta_2 0.999, eps 1e-7).

    m = beta_1 * m + (1 - beta_1) * dW
    u = max(beta_2 * u, |dW|)
    W = W - lr / (1 - beta_1^t) * m / (u + eps)

    Parameters
    ----------
    learning_rate, beta_1, beta_2, epsilon, **kw
        As for :class:`Adam`.
    """

    name = "adamax"
    state_names = ("m", "u")

    def update(self, W, dW, s, lr, t, xp):
        m = s["m"]
        m *= self.beta_1
        m += (1.0 - self.beta_1) * dW
        s["m"] = m
        s["u"] = u = xp.maximum(self.beta_2 * s["u"], xp.abs(dW))
        W -= (lr / (1.0 - self.beta_1**t)) * m / (u + self.epsilon)
        return W


# prod_{i=1..n} (1 - 0.5 * 0.96^i), n = 0, 1, ...: the product of Nadam's momentum schedule
# without its beta_1^t, grown on the host as steps need it. Past ~885 terms each factor rounds
# to 1.0 in float64, so the list stops there.
_SCHEDULE_PRODUCTS = [1.0]


def _schedule_product(t: int) -> float:
    while len(_SCHEDULE_PRODUCTS) <= t:
        factor = 1.0 - 0.5 * 0.96 ** len(_SCHEDULE_PRODUCTS)
        if factor == 1.0:
            return _SCHEDULE_PRODUCTS[-1]
        _SCHEDULE_PRODUCTS.append(_SCHEDULE_PRODUCTS[-1] * factor)
    return _SCHEDULE_PRODUCTS[t]


class Nadam(_Moments):
    """Nadam, Adam with Nesterov momentum (Dozat, in Keras's form; lr 1e-3, eps 1e-7).

    u_t = beta_1 * (1 - 0.5 * 0.96^t)                       (the momentum schedule)
    m = beta_1 * m + (1 - beta_1) * dW
    v = beta_2 * v + (1 - beta_2) * dW^2
    m_hat = u_{t+1} * m / (1 - u_1 ... u_{t+1}) + (1 - u_t) * dW / (1 - u_1 ... u_t)
    v_hat = v / (1 - beta_2^t)
    W = W - lr * m_hat / (sqrt(v_hat) + eps)

    torch.optim.NAdam is the same rule with the schedule 0.96^(t * momentum_decay) and a
    default momentum_decay of 0.004 (Dozat's); Keras's, followed here, is momentum_decay = 1.
    Keras keeps the product u_1 ... u_t in a variable; here it is a function of ``t``, so the
    state is ``m`` and ``v`` only and a compiled or recorded step needs nothing from the host:
    beta_1^t times the product of the (1 - 0.5 * 0.96^i), i <= t (the factors past i ~ 900 are
    1 to the last bit).

    Parameters
    ----------
    learning_rate, beta_1, beta_2, epsilon, **kw
        As for :class:`Adam` (no ``amsgrad``, as in Keras).
    """

    name = "nadam"
    state_names = ("m", "v")

    def _u_product(self, t: Any, W: Array, xp: Any) -> Any:
        """u_1 ... u_t: a host float for a host ``t``, else computed on W's device."""
        if isinstance(t, int):
            return self.beta_1**t * _schedule_product(t)
        # the terms past n are 1 to the dtype's precision: 0.5 * sum_{i>n} 0.96^i < eps / 2
        n = math.ceil(math.log(xp.finfo(W.dtype).eps / 25) / math.log(0.96))
        i = xp.arange(1, n + 1, dtype=W.dtype, device=_device(W))
        terms = 1.0 - (0.5 * 0.96**i) * xp.astype(i <= t, W.dtype)
        return self.beta_1**t * xp.prod(terms)

    def update(self, W, dW, s, lr, t, xp):
        b1 = self.beta_1
        u_t = b1 * (1.0 - 0.5 * 0.96**t)
        u_next = b1 * (1.0 - 0.5 * 0.96 ** (t + 1))
        u_product = self._u_product(t, W, xp)
        m, v = self._moments(dW, s)
        m_hat = (u_next / (1.0 - u_product * u_next)) * m
        m_hat += ((1.0 - u_t) / (1.0 - u_product)) * dW
        denom = xp.sqrt(v / (1.0 - self.beta_2**t))
        denom += self.epsilon
        step = m_hat / denom
        step *= lr
        W -= step
        return W


_REGISTRY: dict[str, type[Optimizer]] = {
    cls.name: cls for cls in (SGD, RMSprop, Adagrad, Adam, AdamW, Adamax, Nadam)
}


def names() -> list[str]:
    """The names :func:`get` accepts.

    Returns
    -------
    list of str
        The registered optimizer names, sorted.
    """
    return sorted(_REGISTRY)


def get(identifier: str | dict | Optimizer) -> Optimizer:
    """An optimizer from a name (``"adam"``), a config dict or an instance (used as is).

    Parameters
    ----------
    identifier : str, dict or Optimizer
        A name from :func:`names`, a dict from ``get_config`` or an instance (returned as is).

    Returns
    -------
    Optimizer

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str | dict):
        return build("optimizer", identifier, _REGISTRY)
    raise TypeError(
        "optimizer must be a name such as 'adam' or an Optimizer instance; received "
        f"{type(identifier).__name__}."
    )
