"""python -m inference_operator.cli: the same as the kubectl-infsvc console script."""

import sys

from inference_operator.cli.main import main

sys.exit(main())
