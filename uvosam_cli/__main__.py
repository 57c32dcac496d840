"""``python -m uvosam_cli``: the same as the ``uvosam`` command."""

import sys

from uvosam_cli import main

sys.exit(main())
