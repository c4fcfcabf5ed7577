"""`python -m bench`: the one entry command (see bench/README.md)."""

import sys

from bench.run import main

sys.exit(main())
