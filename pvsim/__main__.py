"""``python -m pvsim``: the same commands as the ``pvsim`` script."""

import sys

from pvsim.cli import main

sys.exit(main())
