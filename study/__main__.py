"""``python -m study`` is ``python -m study.run``."""

import sys

from study.run import main

sys.exit(main())
