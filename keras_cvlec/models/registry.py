"""The registry of model names: what `list_models()` and the CLI build."""

TASKS = ("classification", "segmentation", "reconstruction")

_REGISTRY = {}


def register_model(name, builder, *, task, **kwargs):
    """Registers `name` as `builder(**kwargs)`, a model for `task`.

    `task` is one of `TASKS`: what the model's outputs predict (image labels,
    per-pixel class masks, or the input image itself).
    """
    if name in _REGISTRY:
        raise ValueError(f"A model named {name!r} is already registered.")
    if task not in TASKS:
        raise ValueError(f"`task` must be one of {TASKS}. Received: task={task!r}")
    _REGISTRY[name] = (builder, task, kwargs)


def list_models(task=None):
    """Every registered model name, sorted.

    Args:
        task: if given, only the models for this task (one of `TASKS`).

    Returns:
        A list of strings, each accepted by `build_model`.

    Example:

    >>> "resnet50" in keras_cvlec.list_models()
    True
    >>> keras_cvlec.list_models("segmentation")[:2]
    ['fcn16s', 'fcn32s']
    """
    if task is not None and task not in TASKS:
        raise ValueError(f"`task` must be None or one of {TASKS}. Received: task={task!r}")
    return sorted(name for name, (_, t, _) in _REGISTRY.items() if task in (None, t))


def _entry(name):
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown model name: {name!r}. Registered models: "
            f"{', '.join(list_models())}."
        )
    return _REGISTRY[name]


def model_task(name):
    """The task (`"classification"`, `"segmentation"` or `"reconstruction"`)
    of the registered model `name`."""
    return _entry(name)[1]


def build_model(name, **kwargs):
    """Builds the registered model `name`; `kwargs` override its defaults."""
    builder, _, defaults = _entry(name)
    return builder(**{**defaults, **kwargs})
