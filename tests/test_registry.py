import pytest

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
