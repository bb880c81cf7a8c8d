"""`python -m steadytune` is the `steadytune` command."""

import sys

from .cli import main

sys.exit(main())
