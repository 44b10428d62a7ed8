"""``python -m nrtsync_local.salesforce``: the stand-in as a process (see ``server.main``)."""

import sys

from nrtsync_local.salesforce.server import main

sys.exit(main())
