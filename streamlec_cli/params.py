"""Declared parameters of algorithms and schemes, and the registries that hold those classes.

Every algorithm and every scheme declares its parameters once, as a tuple of :class:`Param` in
its class attribute ``parameters``: name, type, default, allowed range or choices and a short
doc. The spec's checks and error messages, the constructors' defaults, the labels of a scheme
and the ``ALGORITHMS``/``SCHEMES`` views are all derived from these declarations, so a new
algorithm or scheme is one new module plus one call to its package's ``register``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, TypeVar

#: ``Param.label`` roles: where a parameter shows in a scheme's labels (see ``schemes.label``).
SHAPE, MODE, OPTION = "shape", "mode", "option"


@dataclass(frozen=True)
class Param:
    """One declared parameter.

    ``kind`` is ``int``, ``float``, ``bool`` or ``str``. ``minimum`` bounds a number from below
    (``exclusive``: the bound itself is not allowed); ``choices`` lists the allowed strings.
    ``label`` says where a scheme's parameter shows in its labels: ``shape`` (it sizes the
    group, and names the scheme everywhere, run ids included), ``mode`` (always in the
    scheme's label, and in the variant when not the default), ``option`` (in the variant when
    not the default) or ``""`` (nowhere). ``applies_when`` ties it to another parameter's value.
    """

    name: str
    kind: type
    default: Any
    doc: str = ""
    minimum: float | None = None
    exclusive: bool = False
    choices: tuple[str, ...] = ()
    label: str = ""
    #: ``(other, value)``: the parameter means something only while parameter ``other`` has
    #: that value; a spec that gives it otherwise is refused.
    applies_when: tuple[str, Any] | None = None

    def allows(self, value: Any) -> bool:
        """Whether ``value`` (already of ``kind``) is within the declared range or choices."""
        if self.choices:
            return value in self.choices
        if self.minimum is None or self.kind not in (int, float):
            return True
        return value > self.minimum if self.exclusive else value >= self.minimum

    def allowed(self) -> str:
        """What the declaration allows, in words: ``one of linear, inputs``, ``at least 2``."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        noun = {bool: "true or false", int: "an integer", float: "a number"}.get(self.kind, "text")
        if self.minimum is None or self.kind not in (int, float):
            return noun
        return f"{noun} {'above' if self.exclusive else 'at least'} {self.minimum:g}"


class ParamError(ValueError):
    """Values a scheme or algorithm does not allow together; ``key`` is the parameter to name."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(why)
        self.key = key


def defaults(params: Iterable[Param]) -> dict[str, Any]:
    """Every declared parameter and its default, in declaration order."""
    return {p.name: p.default for p in params}


def bind(
    owner: str, params: tuple[Param, ...], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Constructor arguments -> every declared parameter's value (positional in declaration
    order, defaults filled); a value of a wrong type is converted by ``kind``, and one outside
    its declared range or choices is a ValueError."""
    if len(args) > len(params):
        msg = f"{owner} takes at most {len(params)} parameters, {len(args)} were given"
        raise TypeError(msg)
    values = defaults(params)
    given = dict(zip((p.name for p in params), args, strict=False))
    for key, value in kwargs.items():
        if key not in values or key in given:
            why = "given twice" if key in given else "not one of its parameters"
            msg = f"{owner}: {key!r} is {why} ({', '.join(values) or 'it has none'})"
            raise TypeError(msg)
        given[key] = value
    for param in params:
        if param.name in given:
            values[param.name] = value = param.kind(given[param.name])
            if not param.allows(value):
                msg = f"{owner}: {param.name}={value!r} is not allowed: {param.allowed()}"
                raise ValueError(msg)
    return values


T = TypeVar("T")


class Registry(Generic[T]):
    """Classes by their ``name`` (aliases from their ``aliases``), in registration order.

    ``view`` is a read-only mapping of the registered classes that follows every change.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type[T]] = {}
        self.view: Mapping[str, type[T]] = MappingProxyType(self._classes)

    def register_all(self, classes: Iterable[type[T]]) -> None:
        """``register`` each of ``classes``, in order."""
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[T]) -> type[T]:
        """Add ``cls`` under its ``name`` (usable as a class decorator)."""
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            msg = f"{cls.__name__} needs a name to be registered as a {self.kind}"
            raise TypeError(msg)
        taken = self._classes.get(name) or self.aliases().get(name)
        if taken is not None:
            msg = f"{self.kind} {name!r} is already registered"
            raise ValueError(msg)
        names = [p.name for p in getattr(cls, "parameters", ())]
        if "name" in names or len(set(names)) != len(names):
            msg = f"{cls.__name__}: parameter names must be unique and not 'name'"
            raise TypeError(msg)
        self._classes[name] = cls
        return cls

    def unregister(self, name: str) -> None:
        """Remove the class registered under ``name``."""
        del self._classes[name]

    def aliases(self) -> dict[str, str]:
        """Alternative name -> registered name."""
        return {
            alias: name
            for name, cls in self._classes.items()
            for alias in getattr(cls, "aliases", ())
        }

    def get(self, name: str) -> type[T]:
        """The class registered under ``name`` (or one of its aliases)."""
        cls = self._classes.get(self.aliases().get(name, name))
        if cls is None:
            msg = f"{self.kind} {name!r} is not known: choose one of {', '.join(self._classes)}"
            raise ValueError(msg)
        return cls

    def parameters(self, name: str) -> tuple[Param, ...]:
        """The declared parameters of ``name``; none for a name not registered."""
        cls = self._classes.get(name)
        return tuple(getattr(cls, "parameters", ())) if cls is not None else ()
