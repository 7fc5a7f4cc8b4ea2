"""Which pipelines exist: every ``beamstream.pipelines`` module with options and ``build``.

Discovered rather than listed, so a new pipeline gets a template (and the drift
and translation tests) without anyone remembering to register it.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

PIPELINES_PACKAGE = "beamstream.pipelines"


class UnknownPipelineError(LookupError):
    """No pipeline module by that name."""


def is_pipeline(module: ModuleType) -> bool:
    """A pipeline module declares ``OPTION_CLASSES`` and ``build(pipeline, options)``."""
    return isinstance(getattr(module, "OPTION_CLASSES", None), tuple) and callable(
        getattr(module, "build", None)
    )


def pipeline_modules() -> dict[str, ModuleType]:
    """name -> module, sorted by name. Import errors propagate: a broken pipeline is news."""
    package = importlib.import_module(PIPELINES_PACKAGE)
    found: dict[str, ModuleType] = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.ispkg or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{PIPELINES_PACKAGE}.{info.name}")
        if is_pipeline(module):
            found[info.name] = module
    return found


def pipeline_module(name: str) -> ModuleType:
    """One pipeline by name, with the known names in the error when it does not exist."""
    try:
        module = importlib.import_module(f"{PIPELINES_PACKAGE}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{PIPELINES_PACKAGE}.{name}":
            raise
        module = None
    if module is None or not is_pipeline(module):
        known = ", ".join(pipeline_modules())
        raise UnknownPipelineError(f"no pipeline named {name!r} (pipelines: {known})")
    return module
