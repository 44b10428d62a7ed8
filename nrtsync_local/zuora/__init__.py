"""The HTTPS Zuora stand-in: OAuth client credentials, ``action/query`` with the ZOQL the product emits,
``action/queryMore`` paging, and 429s on demand (``state``: Zuora's behaviour; ``server``: HTTPS and the CLI);
event triggers and notification definitions (``notifications``) and the callouts they send, with faults on their
delivery path on demand (``callouts``)."""

from nrtsync_local.zuora.server import ZuoraStandin
from nrtsync_local.zuora.state import ZuoraState

__all__ = ["ZuoraStandin", "ZuoraState"]
