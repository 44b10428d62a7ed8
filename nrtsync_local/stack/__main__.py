"""``python -m nrtsync_local.stack`` (``make local``): see ``nrtsync_local.stack.foreground``."""

import sys

from nrtsync_local.stack.foreground import main

sys.exit(main())
