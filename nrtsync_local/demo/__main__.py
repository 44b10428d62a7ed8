"""``python -m nrtsync_local.demo`` (``make demo``): see ``nrtsync_local.demo.run``."""

import sys

from nrtsync_local.demo.run import main

sys.exit(main())
