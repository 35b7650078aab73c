"""Old names that keep working: a module `__getattr__` that warns and returns
what the name now is."""

import warnings

__all__ = ["moved_names"]


def moved_names(module_name, moved):
    """A module-level `__getattr__` for names that were renamed or moved.

    Getting an old name gives a `DeprecationWarning` that names the new one
    and returns the object; any other unknown name is an AttributeError.

    Args:
        module_name: the `__name__` of the module that held the old names.
        moved: `{old name: (new name, object)}`; the new name is what the
            warning tells users to write, e.g. `"keras_cvlec.utils.count_macs"`.

    Returns:
        A function to assign to the module's `__getattr__`.

    Example:

    >>> getattr_ = moved_names("my_module", {"old_rate": ("my_module.rate", 0.5)})
    >>> getattr_("old_rate")
    0.5
    """

    def __getattr__(name):
        if name not in moved:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        new_name, value = moved[name]
        warnings.warn(
            f"`{module_name}.{name}` is deprecated; use `{new_name}`.",
            DeprecationWarning,
            stacklevel=2,
        )
        return value

    return __getattr__
