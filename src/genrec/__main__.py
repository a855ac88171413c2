"""`python -m genrec` (and `torchrun -m genrec`): the `genrec` command."""

import sys

from genrec.cli import main

sys.exit(main())
