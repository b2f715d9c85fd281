"""`python -m mlops_tools.cli` == `mlops`."""

import sys

from mlops_tools.cli import main

__all__: list[str] = []

sys.exit(main())
