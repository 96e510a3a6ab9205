"""``python -m alip.cli``: the `alip` command line."""

import sys

from alip.cli import main

sys.exit(main())
