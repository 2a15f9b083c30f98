"""``python -m study.report``."""

import sys

from study.report import main

sys.exit(main())
