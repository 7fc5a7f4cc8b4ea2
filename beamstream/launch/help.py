"""``beamstream <pipeline> --help``: the pipeline's own options, then Beam's."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from types import ModuleType

from apache_beam.options.pipeline_options import PipelineOptions


def print_help(name: str, doc: str, option_classes: Sequence[type[PipelineOptions]]) -> None:
    parser = argparse.ArgumentParser(
        prog=f"beamstream {name}",
        description=doc.strip(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
        epilog="Beam's own options work too, e.g. --runner DirectRunner|FlinkRunner|"
        "DataflowRunner, --streaming, --project, --region, --temp_location, "
        "--flink_master, --environment_type.",
    )
    for cls in option_classes:
        group = parser.add_argument_group(cls.__name__)
        cls._add_argparse_args(group)  # type: ignore[arg-type]  # groups take add_argument too
    parser.print_help()


def pipeline_main(module: ModuleType, argv: Sequence[str]) -> int:
    """The CLI entry of a pipeline module: ``--help``, or ``run(argv)``.

    Errors that are the user's to fix (bad options, a refused model, ...) are
    shown as one line by ``beamstream.cli``.
    """
    if "--help" in argv or "-h" in argv:
        name = module.__name__.rsplit(".", 1)[-1]
        print_help(name, module.__doc__ or "", module.OPTION_CLASSES)
        return 0
    module.run(argv)
    return 0
