"""``python -m study.bench``."""

import sys

from study.bench.cli import main

sys.exit(main())
