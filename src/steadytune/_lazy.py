"""Lazy package attributes (PEP 562): a package's public names import their submodule on first use.

`import steadytune` and `steadytune --help` then cost milliseconds instead of importing torch and transformers.
A public name may equal a submodule's name (`steadytune.evaluate` the function, `steadytune/evaluate.py`;
`steadytune.data.encode`): loading the submodule makes the import system bind the module to that name on the
package, so the package's class keeps such a binding out and the public name stays what an eager
`from .evaluate import evaluate` made it.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_package"]


class _LazyPackage(types.ModuleType):
    """A package whose public names win over the same-named submodules the import system binds to it."""

    _public_names: frozenset[str] = frozenset()

    def __setattr__(self, name: str, value: Any) -> None:
        if (name in self._public_names and isinstance(value, types.ModuleType)
                and value.__name__ == f"{self.__name__}.{name}"):  # fmt: skip
            return  # the submodule stays reachable as sys.modules[...] and by `from package.name import ...`
        super().__setattr__(name, value)


def lazy_package(
    package: str, where: Mapping[str, str | tuple[str, str]]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public names are `where`'s keys: each maps to the submodule
    that defines it (relative, without the dot), or to (submodule, attribute) when the attribute has another name.

    Call it in the package's `__init__.py` as `__getattr__, __dir__ = lazy_package(__name__, {...})`.
    """
    module = sys.modules[package]
    namespace = vars(module)
    module.__class__ = _LazyPackage
    module._public_names = frozenset(where)  # type: ignore[attr-defined]

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        target = where[name]
        submodule, attribute = (target, name) if isinstance(target, str) else target
        value = getattr(importlib.import_module(f".{submodule}", package), attribute)
        namespace[name] = value  # later look-ups find it directly
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
