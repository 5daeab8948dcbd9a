"""Learning-rate schedules against their formulas, config round trips and argument checks."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from backprop import schedules as S

STEPS = [0, 1, 2, 5, 9, 10, 11, 25, 99, 100, 101, 1000]


def close(a: float, b: float) -> bool:
    # a power or a cosine and a product or two: a few ulps
    return math.isclose(a, b, rel_tol=8 * 2.0**-52, abs_tol=0.0)


@pytest.mark.parametrize("staircase", [False, True])
def test_exponential_decay(staircase):
    s = S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5, staircase=staircase)
    for step in STEPS:
        p = step // 10 if staircase else step / 10
        assert close(s(step), 0.1 * 0.5**p), step
    assert s(0) == 0.1
    assert close(s(10), 0.05)
    # staircase holds the rate constant inside each interval
    if staircase:
        assert s(10) == s(19) != s(20)
    else:
        assert s(9) > s(10) > s(11)


def test_step_decay():
    s = S.StepDecay(0.2, step_size=3, gamma=0.5)
    for step in STEPS:
        assert close(s(step), 0.2 * 0.5 ** (step // 3)), step
    assert s(0) == s(2) == 0.2
    assert close(s(3), 0.1)
    default = S.StepDecay(1.0, step_size=2)
    assert default.gamma == 0.1  # PyTorch StepLR's default
    assert close(default(4), 0.01)


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_cosine_decay(alpha):
    s = S.CosineDecay(0.1, decay_steps=100, alpha=alpha)
    for step in STEPS:
        frac = min(step, 100) / 100
        decayed = (1 - alpha) * 0.5 * (1 + math.cos(math.pi * frac)) + alpha
        assert close(s(step), 0.1 * decayed), step
    assert s(0) == 0.1
    assert close(s(50), 0.1 * ((1 - alpha) * 0.5 + alpha))
    assert math.isclose(s(100), 0.1 * alpha, abs_tol=1e-17)
    assert s(1000) == s(100)  # stays at the floor after decay_steps
    values = [s(t) for t in range(0, 120)]
    assert all(a >= b for a, b in itertools.pairwise(values))


SCHEDULES = [
    S.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.9),
    S.ExponentialDecay(0.3, decay_steps=7, decay_rate=0.5, staircase=True),
    S.StepDecay(0.05, step_size=4, gamma=0.3),
    S.CosineDecay(0.2, decay_steps=50, alpha=0.05),
]


@pytest.mark.parametrize("schedule", SCHEDULES, ids=lambda s: s.name)
def test_config_roundtrip(schedule):
    config = schedule.get_config()
    assert config["name"] == schedule.name
    json.dumps(config)  # plain values only
    again = S.get(json.loads(json.dumps(config)))
    assert type(again) is type(schedule)
    assert again.get_config() == config
    assert [again(t) for t in STEPS] == [schedule(t) for t in STEPS]
    assert S.get(schedule) is schedule
    assert type(schedule).__name__ in repr(schedule)


def test_get_unknown_lists_names():
    with pytest.raises(ValueError, match="nope") as info:
        S.get({"name": "nope", "initial_learning_rate": 0.1})
    for name in ("cosine_decay", "exponential_decay", "step_decay"):
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("make", "arg"),
    [
        (lambda: S.ExponentialDecay(0.0, 10, 0.5), "initial_learning_rate"),
        (lambda: S.ExponentialDecay(-0.1, 10, 0.5), "initial_learning_rate"),
        (lambda: S.ExponentialDecay("0.1", 10, 0.5), "initial_learning_rate"),
        (lambda: S.ExponentialDecay(0.1, 0, 0.5), "decay_steps"),
        (lambda: S.ExponentialDecay(0.1, True, 0.5), "decay_steps"),
        (lambda: S.ExponentialDecay(0.1, 10, 0.0), "decay_rate"),
        (lambda: S.ExponentialDecay(0.1, 10, float("nan")), "decay_rate"),
        (lambda: S.StepDecay(0.1, step_size=0), "step_size"),
        (lambda: S.StepDecay(0.1, step_size=2, gamma=-0.5), "gamma"),
        (lambda: S.CosineDecay(0.1, decay_steps=0), "decay_steps"),
        (lambda: S.CosineDecay(0.1, decay_steps=10, alpha=1.5), "alpha"),
        (lambda: S.CosineDecay(0.1, decay_steps=10, alpha=-0.1), "alpha"),
    ],
)
def test_bad_arguments(make, arg):
    with pytest.raises(ValueError, match=arg):
        make()


def test_get_rejects_a_bare_name():
    with pytest.raises(TypeError, match="config dict"):
        S.get("cosine_decay")


@pytest.mark.parametrize(
    "make",
    [
        lambda: S.StepDecay(0.1, step_size=2.5),
        lambda: S.CosineDecay(0.1, decay_steps=10, alpha="x"),
    ],
)
def test_more_bad_arguments(make):
    with pytest.raises((TypeError, ValueError)):
        make()
