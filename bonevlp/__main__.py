"""`python -m bonevlp`: the same command line as `bonevlp`."""

import sys

from bonevlp.cli import main

sys.exit(main())
