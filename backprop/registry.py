"""Building objects by name: ``"adam"`` or ``{"name": "adam", "learning_rate": 0.01}``.

Activations, initializers, optimizers and schedules are all looked up the same way, and a model
file can only name classes found in these registries (loading never imports or runs code).
"""

from __future__ import annotations

from typing import Any


def build(kind: str, identifier: str | dict, registry: dict[str, type]) -> Any:
    """``registry[name](**config)`` for a name or a config dict with a ``"name"`` key.

    Parameters
    ----------
    kind : str
        What is being built (e.g. ``"optimizer"``), used in the error message.
    identifier : str or dict
        A name, or a config dict whose ``"name"`` key names the class and whose other keys
        are passed to its constructor.
    registry : dict of str to type
        Lower-case names to classes.

    Returns
    -------
    object
        ``registry[name.lower()](**config)``.

    Raises
    ------
    ValueError
        For a name not in ``registry``; the message lists the valid ones.
    """
    config = {"name": identifier} if isinstance(identifier, str) else dict(identifier)
    name = config.pop("name", None)
    key = name.lower() if isinstance(name, str) else name
    if key not in registry:
        valid = sorted(k for k in registry if isinstance(k, str))
        raise ValueError(f"Unknown {kind} {name!r}. Expected one of {valid}.")
    return registry[key](**config)
