"""``python -m guard`` is the ``guard`` command."""

import sys

from guard.cmd import main

sys.exit(main())
