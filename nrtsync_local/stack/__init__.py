"""The whole product on this machine, in one process: ``LocalDeployment`` (``make demo``, ``make bench``, the
fault drill, the e2e tests) and ``python -m nrtsync_local.stack`` (``make local``, in the foreground).

What runs (docs/LOCAL.md has the details):

* moto in server mode (SQS, DynamoDB, Secrets Manager, CloudWatch) with the queues, tables and secrets that
  ``template.yaml`` declares, built from its own properties;
* the HTTPS Salesforce stand-in as a child process, unless a real org is configured (``SALESFORCE_LOGIN_URL``);
* the HTTPS Zuora stand-in as a child process, unless a real tenant is configured (``ZUORA_BASE_URL``,
  ``ZUORA_CLIENT_ID``, ``ZUORA_CLIENT_SECRET``), and the ``ZuoraSecret`` holding its credentials;
* a local API Gateway front that turns HTTP requests into REST proxy events for the ingest handler, behind the
  template's Lambda authorizer (the real authorizer handler) and gateway responses;
* the SQS event source poller that feeds the sync handler batches, as the template's event source mapping says;
* the metrics handler on the template's ``MetricsSchedule``;
* the reconcile handler on ``ReconcileSchedule`` when it is a rate (or on demand: ``run_reconcile_now``).

The handlers run in this process and share Powertools' process-wide logger and metrics, so they are invoked
one at a time (one lock), as if each had a single warm container. Each gets its own settings object, built
from its function's environment in the template by ``nrtsync.app``, installed in the handler's ``Lazy``
holder.

The modules, each one seam: ``spec`` (the functions' logical ids, the ingest API, ``LocalDeploymentError``),
``environment`` (each function's variables, set in ``os.environ`` and restored; ``SalesforceOrg``), ``handlers``
(installing and invoking the handlers, the fault drill's wrappers), ``zuora`` (the Zuora stand-in or tenant,
``ZuoraTenant``, and the one CA bundle the functions trust), ``threads`` (the front, the SQS poller
thread, the schedules' threads, spawning and stopping), ``schedule`` (the metrics, probe and reconcile
functions' EventBridge schedules), ``state_file`` (``.local/stack.json``), ``deployment``
(``LocalDeployment``: start, stop, what callers read), ``foreground`` (``make local``'s command line, banner
and signals).
"""

from nrtsync_local.stack.deployment import LocalDeployment
from nrtsync_local.stack.environment import SERVICE_NAME, SalesforceOrg
from nrtsync_local.stack.schedule import schedule_seconds, scheduled_event
from nrtsync_local.stack.spec import EVENTS_DIR, INGEST, METRICS, SYNC, LocalDeploymentError
from nrtsync_local.stack.state_file import DEFAULT_STATE_DIR, STATE_FILE_NAME, write_private_json
from nrtsync_local.stack.zuora_tenant import ZuoraTenant

__all__ = [
    "DEFAULT_STATE_DIR",
    "EVENTS_DIR",
    "INGEST",
    "METRICS",
    "SERVICE_NAME",
    "STATE_FILE_NAME",
    "SYNC",
    "LocalDeployment",
    "LocalDeploymentError",
    "SalesforceOrg",
    "ZuoraTenant",
    "schedule_seconds",
    "scheduled_event",
    "write_private_json",
]
