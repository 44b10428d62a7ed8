"""``python -m nrtsync``: the operator's command line."""

import sys

from nrtsync.cli import run

sys.exit(run())
