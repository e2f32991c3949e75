"""``python -m producer_api.cli``: the ``taskpulse`` command."""

import sys

from producer_api.cli import main

sys.exit(main())
