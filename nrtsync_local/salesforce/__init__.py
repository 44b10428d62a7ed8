"""A local HTTPS Salesforce stand-in: OAuth token, sObject Collections upsert, Composite, limits, fault injection.

It answers the way Salesforce's REST API documents it (response shapes, error codes, the
``Sforce-Limit-Info`` header), closely enough for the adapter and the sync logic to be tested over real
HTTPS. Records live in memory, per sObject; the sObject must be known, relationships (``Rel__r: {ExtField:
value}``) must be configured, and values of the fields in ``StandinConfig.fields`` (Zuora 360's, by default)
must fit their types or the whole request is refused with 400 ``JSON_PARSER_ERROR``; other fields are not
checked. A new record without its master-detail parent (Zuora 360's package metadata), or a write that clears
it, is refused with ``REQUIRED_FIELD_MISSING``, seeded records too. Known approximations: the messages of rarely
seen errors, the column in a JSON_PARSER_ERROR message, and the API allocation counts every authenticated request
(not refused or fault-injected ones).

Control API (plain JSON, no auth) under ``/__standin/``: ``faults``, ``config``, ``records/{SObject}``,
``stats``, ``reset``, ``health``; see docs/SALESFORCE.md.

Run as a process (``server`` holds the command line)::

    python -m nrtsync_local.salesforce --port 0 --ready-file ready.json --ca-file ca.pem

The modules, each one seam: ``answers`` (the Answer type, error bodies, paths), ``config`` (the org the stand-in
is), ``oauth`` (the JWT bearer rules), ``schema`` (field types and deserialization), ``records`` (the record
store), ``faults``, ``composite`` (sObject Collections, sObject Rows, Composite), ``state`` (sessions,
allocation, routing, behind one lock), ``control`` (the ``/__standin/`` API), ``server`` (HTTPS and the CLI).
"""

from nrtsync_local.salesforce.config import StandinConfig
from nrtsync_local.salesforce.records import salesforce_id
from nrtsync_local.salesforce.server import SalesforceStandin
from nrtsync_local.salesforce.state import SalesforceState

__all__ = ["SalesforceStandin", "SalesforceState", "StandinConfig", "salesforce_id"]
