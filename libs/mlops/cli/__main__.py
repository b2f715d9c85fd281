"""`python -m mlops.cli` == `mlops`."""

import sys

from mlops.cli import main

sys.exit(main())
