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


# -- what a floor above provides to the floors below it --------------------------------------
# kind -> name -> object: the model class that loading builds ("model", "Sequential"), the
# communicators that fit(distributed=...) uses ("distributed", "communicators"). Whoever
# defines the object registers it when imported; the floor below looks it up by name at call
# time, so it never imports the floor above (as Keras's serialization finds classes by name).
_PROVIDED: dict[str, dict[str, Any]] = {}


def register(kind: str, name: str, obj: Any) -> Any:
    """Make ``obj`` known as ``name`` of ``kind``; returns ``obj`` (usable as a decorator's body).

    Parameters
    ----------
    kind : str
        What is registered, e.g. ``"model"``.
    name : str
        Its name, e.g. ``"Sequential"`` (case-sensitive, as a class name is).
    obj : object
        The class, function or module registered; a later registration replaces it.

    Returns
    -------
    object
        ``obj``.

    Examples
    --------
    >>> from backprop import registry
    >>> registry.lookup("model", "Sequential").__name__
    'Sequential'
    """
    _PROVIDED.setdefault(kind, {})[name] = obj
    return obj


def lookup(kind: str, name: str, hint: str = "") -> Any:
    """The object registered as ``name`` of ``kind``.

    Parameters
    ----------
    kind, name : str
        As given to :func:`register`.
    hint : str, optional
        How to make it known, added to the error message.

    Returns
    -------
    object
        What :func:`register` was given.

    Raises
    ------
    LookupError
        When nothing is registered under that name; the message lists what is.
    """
    known = _PROVIDED.get(kind, {})
    if name not in known:
        raise LookupError(
            f"No {kind} named {name!r} is registered (registered: {sorted(known)}). {hint}".strip()
        )
    return known[name]
