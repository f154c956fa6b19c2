"""``python -m focalbench.cli``."""

import sys

from focalbench.cli import main

sys.exit(main())
