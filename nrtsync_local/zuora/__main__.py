import sys

from nrtsync_local.zuora.server import main

sys.exit(main())
