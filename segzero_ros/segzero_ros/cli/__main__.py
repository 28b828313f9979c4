"""``python -m segzero_ros.cli``: the ``segzero`` command."""

import sys

from segzero_ros.cli import main

sys.exit(main())
