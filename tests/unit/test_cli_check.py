"""``nrtsync check``'s own findings: secrets still holding placeholders (no token asked for them) and an alarm
topic nobody is subscribed to; exit 1 when one blocks."""

from __future__ import annotations

import argparse
import io
import json

from nrtsync_cli.check import CheckSources, run_check

PLACEHOLDERS = {
    "salesforce": {"login_url": "https://login.salesforce.com", "client_id": "REPLACE_ME", "client_secret": "x"},
    "zuora": {"base_url": "https://rest.zuora.com", "client_id": "REPLACE_ME", "client_secret": "REPLACE_ME"},
    "callout": {"username": "zuora", "password": "generated"},
}


def test_placeholders_and_an_unsubscribed_alarm_topic_are_reported() -> None:
    out = io.StringIO()
    sources = CheckSources(secrets=PLACEHOLDERS, alarm_subscriptions=list)

    code = run_check(argparse.Namespace(json=True, mapping=None), out, sources)

    findings = [(f["severity"], f["what"], f["problem"]) for f in json.loads(out.getvalue())]
    assert code == 1
    assert findings == [
        ("block", "salesforce secret", "client_id still holds its placeholder"),
        ("block", "zuora secret", "client_id still holds its placeholder"),
        ("block", "zuora secret", "client_secret still holds its placeholder"),
        ("warn", "alarm topic", "no confirmed subscription: alarms reach nobody"),
    ]
