import numpy as np
import pytest

import backprop as bp
from backprop import registry
from backprop.registry import build


class Thing:
    def __init__(self, size=1):
        self.size = size


REGISTRY = {"thing": Thing}


def test_by_name_and_by_config():
    assert build("thing", "Thing", REGISTRY).size == 1  # names are case-insensitive
    assert build("thing", {"name": "thing", "size": 3}, REGISTRY).size == 3


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Unknown thing 'other'\. Expected one of \['thing'\]"):
        build("thing", "other", REGISTRY)


def test_bad_config_is_a_type_error():
    with pytest.raises(TypeError):
        build("thing", {"name": "thing", "colour": "red"}, REGISTRY)


# -- what a floor above provides to the floors below it (issue 20) ----------------------------


def test_register_and_lookup(monkeypatch):
    monkeypatch.setattr(registry, "_PROVIDED", {})
    assert registry.register("thing", "Thing", Thing) is Thing
    assert registry.lookup("thing", "Thing") is Thing
    with pytest.raises(LookupError, match=r"No thing named 'Other'.*\['Thing'\]\)\. Import it\.$"):
        registry.lookup("thing", "Other", hint="Import it.")


def test_the_model_and_the_communicators_are_registered_on_import():
    assert registry.lookup("model", "Sequential") is bp.Sequential
    assert registry.lookup("distributed", "communicators") is bp.distributed.comm


def test_load_builds_the_registered_model_class(tmp_path, monkeypatch):
    """io never imports the model: it builds the class registered as "Sequential"."""

    class Registered(bp.Sequential):
        pass

    model = bp.Sequential([bp.layers.Dense(2, input_dim=3)], seed=0)
    path = tmp_path / "m.npz"
    model.save(path)
    monkeypatch.setitem(registry._PROVIDED["model"], "Sequential", Registered)
    loaded = bp.load(path)
    assert type(loaded) is Registered
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fit_distributed_without_the_communicators_says_what_to_import(monkeypatch):
    monkeypatch.setitem(registry._PROVIDED, "distributed", {})
    model = bp.Sequential([bp.layers.Dense(1, "sigmoid", input_dim=2)], seed=0)
    model.compile("binary_crossentropy", "sgd")
    X, y = np.zeros((4, 2)), np.zeros(4)
    with pytest.raises(LookupError, match=r"fit\(distributed=\.\.\.\) needs backprop\.distributed"):
        model.fit(X, y, verbose=0, distributed="single")
    assert model.optimizer.iterations == 0
