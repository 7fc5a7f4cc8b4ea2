"""Flex Template ``metadata.json`` from a pipeline's ``PipelineOptions`` classes.

The options classes are the one description of a pipeline's parameters: each
class's ``_add_argparse_args`` runs on a parser of our own, and every option it
declares becomes a template parameter (name, label, help, optional or not,
a regex where the shape is known). ``beamstream templates generate`` writes the
files, ``beamstream templates check`` (and a test) fails when the checked-in
ones differ, so the templates cannot drift from the code.

    beamstream templates generate [--out templates]
    beamstream templates check    [--out templates]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

from beamstream.deploy.catalog import pipeline_modules

METADATA_FILE = "metadata.json"
LIST_SEPARATOR = ";"

# Kinds of parameter, as the launcher must pass them back to argparse.
VALUE, FLAG, LIST = "value", "flag", "list"

_KAFKA = r"kafka://[^/?#]+/[^?#]+(\?.*)?"
_FILE = r"(file|gs)://.+|[^:]+"
SOURCE_REGEX = rf"^({_KAFKA}|pubsub://projects/[^/]+/subscriptions/[^/]+|{_FILE})$"
SINK_REGEX = (
    rf"^({_KAFKA}|pubsub://projects/[^/]+/topics/[^/]+"
    rf"|(sqlite|postgresql|postgres|mysql)(\+[a-z0-9]+)?://.+|{_FILE})$"
)
NUMBER_REGEX = r"^[0-9]+(\.[0-9]+)?$"
POSITIVE_INT_REGEX = r"^[1-9][0-9]*$"
BOOLEAN_REGEX = "^(true|false)$"

# argparse ``type=`` callables (by name: pipelines keep private copies) -> regex.
TYPE_REGEXES = {
    "source_uri": SOURCE_REGEX,
    "sink_uri": SINK_REGEX,
    "non_negative": NUMBER_REGEX,
    "positive": NUMBER_REGEX,
    "float": NUMBER_REGEX,
    "positive_int": POSITIVE_INT_REGEX,
    "non_negative_int": r"^[0-9]+$",
    "int": r"^-?[0-9]+$",
}


class MetadataError(ValueError):
    """A pipeline's options cannot be turned into template parameters."""


@dataclass(frozen=True)
class TemplateParameter:
    """One Flex Template parameter, i.e. one pipeline option."""

    name: str
    label: str
    help_text: str
    optional: bool
    kind: str = VALUE
    regexes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "helpText": self.help_text,
            "isOptional": self.optional,
            "paramType": "TEXT",
        }
        if self.regexes:
            entry["regexes"] = list(self.regexes)
        return entry


class _RecordingParser(_BeamArgumentParser):
    """Beam's parser class (some options use its extras), never used to parse."""

    def __init__(self) -> None:
        super().__init__(add_help=False, allow_abbrev=False)


def declared_options(
    option_classes: Iterable[type[PipelineOptions]],
) -> list[tuple[type[PipelineOptions], argparse.Action]]:
    """(declaring class, argparse action) for every option, in declaration order."""
    parser = _RecordingParser()
    declared: list[tuple[type[PipelineOptions], argparse.Action]] = []
    for cls in option_classes:
        before = len(parser._actions)  # noqa: SLF001 - argparse has no public list
        try:
            cls._add_argparse_args(parser)  # noqa: SLF001 - Beam's own extension point
        except argparse.ArgumentError as exc:
            owners = ", ".join(c.__name__ for c, _ in declared)
            raise MetadataError(f"{cls.__name__}: {exc} (declared before by {owners})") from None
        declared += [(cls, action) for action in parser._actions[before:]]  # noqa: SLF001
    return declared


def _kind(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):  # noqa: SLF001
        return FLAG
    if isinstance(action, argparse._AppendAction) or action.nargs in ("*", "+"):  # noqa: SLF001
        return LIST
    return VALUE


def _format_default(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if not text or text.endswith((".", "!", "?", ")")) else text + "."


def help_text(action: argparse.Action, kind: str) -> str:
    """The option's own help, %-expanded as argparse would, plus choices and default."""
    raw = action.help or ""
    if "%" in raw:
        raw = raw % dict(vars(action), prog="beamstream")
    parts = [_sentence(raw)] if raw else []
    if kind == FLAG:
        parts.append("true or false (default false).")
    else:
        if action.choices:
            parts.append("One of: " + ", ".join(str(c) for c in action.choices) + ".")
        if action.default not in (None, "", [], ()) and not isinstance(action.default, bool):
            parts.append(f"Default: {_format_default(action.default)}.")
    if kind == LIST:
        parts.append(f"Several values: separate them with '{LIST_SEPARATOR}'.")
    return " ".join(parts)


def regexes(action: argparse.Action, kind: str) -> tuple[str, ...]:
    if kind == FLAG:
        return (BOOLEAN_REGEX,)
    if action.choices:
        return ("^(" + "|".join(re.escape(str(c)) for c in action.choices) + ")$",)
    type_name = getattr(action.type, "__name__", None)
    if kind == VALUE and type_name in TYPE_REGEXES:
        return (TYPE_REGEXES[type_name],)
    return ()


def label(name: str) -> str:
    words = name.split("_")
    return " ".join([words[0].capitalize(), *words[1:]])


def template_parameters(module: ModuleType) -> list[TemplateParameter]:
    """Every option of a pipeline module as a template parameter."""
    required = set(getattr(module, "REQUIRED", ()))
    parameters: list[TemplateParameter] = []
    for _, action in declared_options(module.OPTION_CLASSES):
        if not action.option_strings:
            raise MetadataError(f"{module.__name__}: positional argument {action.dest!r}")
        kind = _kind(action)
        parameters.append(
            TemplateParameter(
                name=action.dest,
                label=label(action.dest),
                help_text=help_text(action, kind),
                optional=action.dest not in required,
                kind=kind,
                regexes=regexes(action, kind),
            )
        )
    unknown = required - {p.name for p in parameters}
    if unknown:
        raise MetadataError(f"{module.__name__}: REQUIRED names no option: {sorted(unknown)}")
    return parameters


def description(module: ModuleType) -> str:
    """The first paragraph of the module docstring, on one line, without RST quotes."""
    first = (module.__doc__ or "").strip().split("\n\n", 1)[0]
    return " ".join(first.replace("``", "").split())


def metadata(name: str, module: ModuleType) -> dict[str, Any]:
    return {
        "name": f"beamstream-{name}",
        "description": description(module),
        "parameters": [p.to_json() for p in template_parameters(module)],
    }


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def expected_files(out: Path) -> dict[Path, str]:
    """Every metadata file ``generate`` writes under ``out``, with its content."""
    return {
        out / name / METADATA_FILE: render(metadata(name, module))
        for name, module in pipeline_modules().items()
    }


def generate(out: Path) -> list[Path]:
    """Writes the metadata files; returns those that changed."""
    changed = []
    for path, text in expected_files(out).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            changed.append(path)
    return changed


def drift(out: Path) -> list[str]:
    """What differs between ``out`` and what ``generate`` would write (empty: nothing)."""
    expected = expected_files(out)
    problems = []
    for path, text in expected.items():
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the pipeline's options")
    for path in sorted(out.glob(f"*/{METADATA_FILE}")):
        if path not in expected:
            problems.append(f"{path}: no pipeline named {path.parent.name!r}")
    return problems


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="beamstream templates", description=(__doc__ or "").strip().split("\n\n")[0]
    )
    parser.add_argument("action", choices=("generate", "check"))
    parser.add_argument("--out", default="templates", help="Template folder (default templates).")
    args = parser.parse_args(list(argv))
    out = Path(args.out)
    if args.action == "generate":
        changed = generate(out)
        for path in changed:
            print(f"wrote {path}")
        if not changed:
            print(f"{out}: up to date")
        return 0
    problems = drift(out)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("run: beamstream templates generate", file=sys.stderr)
        return 1
    print(f"{out}: {len(expected_files(out))} template metadata files up to date")
    return 0
