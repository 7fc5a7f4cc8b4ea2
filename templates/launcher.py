"""Flex Template entry point (``FLEX_TEMPLATE_PYTHON_PY_FILE``).

Thin on purpose: the code lives in the installed ``beamstream`` package, which
is also what the workers run. The pipeline is ``$BEAMSTREAM_PIPELINE`` (one
image tag per template, see Dockerfile); the template's parameters arrive as
``--name=value`` arguments.
"""

import sys

from beamstream.deploy.launch import main

if __name__ == "__main__":
    sys.exit(main())
