"""`python -m genrec.cli`, the same as the `genrec` console script."""

import sys

from genrec.cli import main

sys.exit(main())
