"""``python -m study.compare``."""

import sys

from study.compare import main

sys.exit(main())
