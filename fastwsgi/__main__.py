"""`python -m fastwsgi ...` is the `fastwsgi` command."""

import sys

from .cli import main

sys.exit(main())
