"""Learning-rate schedules: the step number (host int) -> the learning rate (host float).

They are evaluated on the host once per step, so a schedule never costs a device round trip.

Examples
--------
>>> ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)(10)
0.05
"""

from __future__ import annotations

import math
from typing import Any

from ._checks import as_float, as_number, check_bool, is_int
from .registry import build


class LearningRateSchedule:
    """Base class: ``schedule(step) -> learning rate``; ``step`` counts from 0."""

    name = "schedule"

    def __call__(self, step: int) -> float:
        """The learning rate at a step.

        Parameters
        ----------
        step : int
            Steps taken so far (0 for the first step).

        Returns
        -------
        float
            The learning rate.
        """
        raise NotImplementedError

    def get_config(self) -> dict[str, Any]:
        """The arguments that rebuild this schedule with :func:`get`.

        Returns
        -------
        dict
            ``{"name": ...}`` plus the constructor arguments.
        """
        return {"name": self.name, **{k: v for k, v in vars(self).items()}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _positive(value: Any, what: str) -> int | float:
    """``value`` as a Python int or float (NumPy scalars accepted: configs must be JSON-able)."""
    number = as_number(value)
    if number is None or not number > 0:
        raise ValueError(f"{what} must be a positive number, received {what}={value!r}.")
    return number


class ExponentialDecay(LearningRateSchedule):
    """lr = initial_learning_rate * decay_rate ** (step / decay_steps) (floored if staircase).

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, > 0.
    decay_steps : int
        Steps over which the rate is multiplied by ``decay_rate``, > 0.
    decay_rate : float
        The factor per ``decay_steps``, > 0.
    staircase : bool, default False
        Whether to decay in discrete jumps (``step // decay_steps``).
    """

    name = "exponential_decay"

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        decay_rate: float,
        staircase: bool = False,
    ):
        self.initial_learning_rate = float(
            _positive(initial_learning_rate, "initial_learning_rate")
        )
        self.decay_steps = _positive(decay_steps, "decay_steps")
        self.decay_rate = float(_positive(decay_rate, "decay_rate"))
        self.staircase = check_bool(staircase, "staircase")

    def __call__(self, step):
        p = step / self.decay_steps
        if self.staircase:
            p = math.floor(p)
        return self.initial_learning_rate * self.decay_rate**p


class StepDecay(LearningRateSchedule):
    """lr = initial_learning_rate * gamma ** floor(step / step_size) (PyTorch's StepLR).

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, > 0.
    step_size : int
        Steps between decays, a positive integer.
    gamma : float, default 0.1
        The factor applied every ``step_size`` steps, > 0.
    """

    name = "step_decay"

    def __init__(self, initial_learning_rate: float, step_size: int, gamma: float = 0.1):
        self.initial_learning_rate = float(
            _positive(initial_learning_rate, "initial_learning_rate")
        )
        if not is_int(step_size):
            raise TypeError(f"step_size must be a positive integer, received {step_size!r}.")
        self.step_size = int(_positive(step_size, "step_size"))
        self.gamma = float(_positive(gamma, "gamma"))

    def __call__(self, step):
        return self.initial_learning_rate * self.gamma ** (step // self.step_size)


class CosineDecay(LearningRateSchedule):
    """Cosine decay from ``initial_learning_rate`` to ``alpha * initial_learning_rate``.

    lr = initial * ((1 - alpha) * (1 + cos(pi * min(step, decay_steps) / decay_steps)) / 2 + alpha)

    Parameters
    ----------
    initial_learning_rate : float
        The rate at step 0, > 0.
    decay_steps : int
        Steps to decay over, > 0; the rate then stays at its minimum.
    alpha : float, default 0.0
        The minimum as a fraction of ``initial_learning_rate``, in [0, 1].
    """

    name = "cosine_decay"

    def __init__(self, initial_learning_rate: float, decay_steps: int, alpha: float = 0.0):
        self.initial_learning_rate = float(
            _positive(initial_learning_rate, "initial_learning_rate")
        )
        # kept as given, like ExponentialDecay's: int() would turn 0.5 into 0 (a division by 0)
        self.decay_steps = _positive(decay_steps, "decay_steps")
        alpha_float = as_float(alpha)
        if alpha_float is None or not 0 <= alpha_float <= 1:
            raise ValueError(f"alpha must be in [0, 1], received alpha={alpha!r}.")
        self.alpha = alpha_float

    def __call__(self, step):
        frac = min(step, self.decay_steps) / self.decay_steps
        cosine = 0.5 * (1.0 + math.cos(math.pi * frac))
        return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)


_REGISTRY = {cls.name: cls for cls in (ExponentialDecay, StepDecay, CosineDecay)}


def get(identifier: dict | LearningRateSchedule) -> LearningRateSchedule:
    """A schedule from a config dict or an instance.

    Parameters
    ----------
    identifier : dict or LearningRateSchedule
        A dict from ``get_config`` or an instance (returned as is).

    Returns
    -------
    LearningRateSchedule
    """
    if isinstance(identifier, LearningRateSchedule):
        return identifier
    if not isinstance(identifier, dict):
        raise TypeError(
            "a schedule must be a LearningRateSchedule or a config dict such as "
            "{'name': 'cosine_decay', 'initial_learning_rate': 0.1, 'decay_steps': 1000}; "
            f"received {identifier!r}."
        )
    return build("schedule", identifier, _REGISTRY)
