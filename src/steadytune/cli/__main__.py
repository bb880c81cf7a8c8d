"""`python -m steadytune.cli`: the `steadytune` command."""

import sys

from . import main

sys.exit(main())
