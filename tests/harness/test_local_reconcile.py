"""The reconcile function in the local stack: installed from the template, run on demand
(``run_reconcile_now``) or on its schedule; what it queues is synced through the same queue into the Salesforce
stand-in, and only what Salesforce lacks is queued."""

from __future__ import annotations

import copy
import itertools
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from nrtsync_local.stack import LocalDeployment
from nrtsync_local.stack.schedule import optional_schedule_interval
from nrtsync_local.template import load_template

pytestmark = pytest.mark.integration

ACCOUNT_SOBJECT = "Zuora__CustomerAccount__c"
# Zuora renders dateTimes in the tenant's time zone with milliseconds (a US tenant on Pacific standard time).
TENANT_TZ = timezone(timedelta(hours=-8))
_stacks = itertools.count()


def stack_name() -> str:
    return f"recon{os.getpid()}x{next(_stacks)}"  # moto's state is per process: one name per stack


def zuora_date(moment: datetime) -> str:
    return moment.astimezone(TENANT_TZ).isoformat(timespec="milliseconds")


def accounts(count: int) -> list[dict[str, Any]]:
    """Zuora accounts changed a minute ago: the records the stand-in holds (callout field names)."""
    changed = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    return [
        {
            "Id": f"8ad09be4{uuid.uuid4().hex[:24]}",
            "UpdatedDate": zuora_date(changed + timedelta(seconds=n)),
            "Name": f"Reconciled Traders {n} Ltd",
            "AccountNumber": f"A{n:08d}",
            "Status": "Active",
            "CrmId": f"0015g00000R{n:07d}",  # linked: Zuora 360 syncs only accounts with a CRM Account Id
        }
        for n in range(count)
    ]


def call_out(stack: LocalDeployment, record: dict[str, Any]) -> None:
    """The callout Zuora sends for the record's change (same fields, same updatedDate)."""
    fields = {name: value for name, value in record.items() if name not in {"Id", "UpdatedDate"}}
    body = {
        "eventType": "NrtsyncAccountChanged",
        "objectType": "Account",
        "id": record["Id"],
        "updatedDate": record["UpdatedDate"],
        "fields": fields,
    }
    with requests.Session() as http:
        http.trust_env = False
        answer = http.post(
            stack.callout_url,
            data=json.dumps(body),
            headers={"Content-Type": "application/json", "Zuora-Notification-Id": str(uuid.uuid4())},
            auth=stack.callout_auth,
            timeout=30,
        )
    assert answer.status_code == 200, answer.text


def held_names(stack: LocalDeployment) -> dict[str, str]:
    assert stack.standin is not None
    return {str(r["Zuora__External_Id__c"]): str(r["Name"]) for r in stack.standin.records(ACCOUNT_SOBJECT)}


def test_run_reconcile_now_queues_only_the_changes_never_called_out_and_they_reach_salesforce() -> None:
    with LocalDeployment(
        stack_name=stack_name(),
        with_metrics=False,
        reconcile_every_seconds="off",
        environment_overrides={"RECONCILE_SETTLE_SECONDS": "0"},
    ) as stack:
        # Given five accounts in Zuora, of which only three were called out and synced
        assert stack.zuora is not None
        records = accounts(5)
        stack.zuora.seed("Account", records)
        for record in records[:3]:
            call_out(stack, record)
        stack.wait_until_drained(timeout=30)
        calls_before = int(stack.standin.stats()["api_calls"]) if stack.standin else 0
        assert sorted(held_names(stack)) == sorted(r["Id"] for r in records[:3])

        # When the reconcile function runs once
        result = stack.run_reconcile_now()
        stack.wait_until_drained(timeout=30)

        # Then it read all five, queued exactly the two never called out, and the sync wrote them
        assert (result["read"], result["queued"], result["errors"]) == (5, 2, 0), result
        assert held_names(stack) == {r["Id"]: r["Name"] for r in records}
        assert stack.reconcile_runs == 1
        assert stack.reconcile_interval_seconds is None  # "off": only on demand
        # ... in one Salesforce call, and their trails say where they came from
        assert stack.standin is not None
        assert int(stack.standin.stats()["api_calls"]) == calls_before + 1
        trail = stack.operations().trail("Account", records[4]["Id"])
        assert any(item.get("source") == "reconcile" for item in trail), trail
        assert not any(
            item.get("source") == "reconcile" for item in stack.operations().trail("Account", records[0]["Id"])
        )

        # And a second run finds the org in step: nothing queued
        again = stack.run_reconcile_now()
        assert again["queued"] == 0, again


def test_the_reconcile_function_runs_on_its_schedule() -> None:
    with LocalDeployment(
        stack_name=stack_name(),
        with_metrics=False,
        reconcile_every_seconds=1,
        environment_overrides={"RECONCILE_SETTLE_SECONDS": "0"},
    ) as stack:
        # Given an account in Zuora whose callout never came
        assert stack.zuora is not None
        [record] = accounts(1)
        stack.zuora.seed("Account", [record])

        # When the schedule runs the function (every second here) for a while
        deadline = time.monotonic() + 20
        while record["Id"] not in held_names(stack) and time.monotonic() < deadline:
            time.sleep(0.2)  # polls the running stack (its schedule thread, the stand-ins) until the deadline

        # Then the account reached Salesforce without anyone asking
        assert held_names(stack).get(record["Id"]) == record["Name"]
        assert stack.reconcile_runs >= 1
        assert stack.reconcile_interval_seconds == 1


def test_the_schedule_follows_reconcile_schedule_a_rate_off_or_a_cron() -> None:
    template = load_template()
    assert optional_schedule_interval(template, "ReconcileFunction", None) == 15 * 60  # rate(15 minutes)
    assert optional_schedule_interval(template, "ReconcileFunction", "off") is None
    assert optional_schedule_interval(template, "ReconcileFunction", 0) is None
    assert optional_schedule_interval(template, "ReconcileFunction", 2.5) == 2.5

    off = copy.deepcopy(template)
    off["Parameters"]["ReconcileSchedule"]["Default"] = "off"
    assert optional_schedule_interval(off, "ReconcileFunction", None) is None

    hourly = copy.deepcopy(template)
    hourly["Parameters"]["ReconcileSchedule"]["Default"] = "rate(1 hour)"
    assert optional_schedule_interval(hourly, "ReconcileFunction", None) == 3600

    cron = copy.deepcopy(template)
    cron["Parameters"]["ReconcileSchedule"]["Default"] = "cron(0/15 * * * ? *)"
    assert optional_schedule_interval(cron, "ReconcileFunction", None) is None
