"""The HTTPS Zuora stand-in: OAuth client credentials, ``action/query`` with the ZOQL the product emits,
``action/queryMore`` paging, and 429s on demand (``state``: Zuora's behaviour; ``server``: HTTPS and the CLI)."""

from nrtsync_local.zuora.server import ZuoraStandin
from nrtsync_local.zuora.state import ZuoraState

__all__ = ["ZuoraStandin", "ZuoraState"]
