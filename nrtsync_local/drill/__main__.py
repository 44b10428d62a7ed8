"""``python -m nrtsync_local.drill`` (``make soak`` with ``--changes 20000``): see ``nrtsync_local.drill.run``."""

import sys

from nrtsync_local.drill.run import main

sys.exit(main())
