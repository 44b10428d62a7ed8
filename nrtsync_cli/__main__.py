"""``python -m nrtsync_cli``: the operator's command line, as the ``nrtsync`` script runs it."""

import sys

from nrtsync_cli.cli import main

sys.exit(main())
