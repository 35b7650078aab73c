"""The registry of model names: what `list_models()` and the CLI build."""

_REGISTRY = {}


def register_model(name, builder, **kwargs):
    """Registers `name` as `builder(**kwargs)`."""
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered.")
    _REGISTRY[name] = (builder, kwargs)


def list_models():
    """Every registered model name, sorted.

    Returns:
        A list of strings, each accepted by `build_model`.

    Example:

    >>> "resnet50" in keras_cvlec.list_models()
    True
    """
    return sorted(_REGISTRY)


def build_model(name, **kwargs):
    """Builds the registered model `name`; `kwargs` override its defaults."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model name: {name!r}. Registered models: "
            f"{', '.join(list_models())}."
        )
    builder, defaults = _REGISTRY[name]
    return builder(**{**defaults, **kwargs})
