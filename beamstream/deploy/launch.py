"""What a Flex Template launch runs: one pipeline, with the template's parameters.

The Dataflow launcher calls ``FLEX_TEMPLATE_PYTHON_PY_FILE`` (templates/launcher.py)
with every parameter as ``--name=value`` plus its own Beam options (runner,
project, region, staging and template locations). argparse wants on/off
options bare (``--fill_gaps``) and repeatable ones repeated, so those are
rewritten here; everything else passes through to the pipeline's ``run()``,
which parses strictly. The pipeline is named by ``BEAMSTREAM_PIPELINE`` (set
per image tag in templates/Dockerfile) or, by hand, by the first argument.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType

from beamstream.deploy.catalog import UnknownPipelineError, pipeline_module
from beamstream.deploy.metadata import FLAG, LIST, LIST_SEPARATOR, template_parameters
from beamstream.launch.run import OptionsError

PIPELINE_ENV = "BEAMSTREAM_PIPELINE"
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


def template_argv(module: ModuleType, argv: Sequence[str]) -> list[str]:
    """``--flag=true`` → ``--flag``, ``--flag=false`` → nothing, ``--list=a;b`` → repeated."""
    kinds = {p.name: p.kind for p in template_parameters(module)}
    out: list[str] = []
    for arg in argv:
        name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        kind = kinds.get(name) if sep else None
        if kind == FLAG:
            if value.strip().lower() in _TRUE:
                out.append(f"--{name}")
            elif value.strip().lower() not in _FALSE:
                raise OptionsError(f"--{name}={value}: expected true or false")
        elif kind == LIST:
            items = (item.strip() for item in value.split(LIST_SEPARATOR))
            out += [f"--{name}={item}" for item in items if item]
        else:
            out.append(arg)
    return out


def choose_pipeline(argv: Sequence[str], environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """(pipeline name, remaining arguments) from the environment or the first argument."""
    name = environ.get(PIPELINE_ENV, "").strip()
    if name:
        return name, list(argv)
    if argv and not argv[0].startswith("-"):
        return argv[0], list(argv[1:])
    raise OptionsError(f"no pipeline: set {PIPELINE_ENV} or pass its name first")


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    from beamstream.errors import USER_ERRORS

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        name, rest = choose_pipeline(args, os.environ if environ is None else environ)
        module = pipeline_module(name)
        module.run(template_argv(module, rest))
    except USER_ERRORS + (UnknownPipelineError,) as exc:
        print(f"beamstream template: error: {exc}", file=sys.stderr)
        return 2
    return 0
