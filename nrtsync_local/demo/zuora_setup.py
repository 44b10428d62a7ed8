"""What ``zuora setup`` made in the Zuora stand-in when the local stack started (``LocalDeployment`` with
``zuora_callouts`` runs it as ``nrtsync --local zuora setup`` does), read back through Zuora's own API: the event
triggers (``GET /events/event-triggers``) and the notification definitions
(``GET /notifications/notification-definitions``), as developer.zuora.com documents them."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, TextIO

from nrtsync_cli.render import print_table

if TYPE_CHECKING:
    from nrtsync_local.standin.process import ZuoraStandinClient

PAGE = 100


def zuora_setup(zuora: ZuoraStandinClient) -> dict[str, list[dict[str, Any]]]:
    """``triggers`` and ``definitions`` of the tenant (a definition's password is never answered back)."""
    with zuora.session() as session:
        token = session.post(
            f"{zuora.url}/oauth/token",
            data={
                "client_id": zuora.client_id,
                "client_secret": zuora.client_secret,
                "grant_type": "client_credentials",
            },
            timeout=10,
        )
        token.raise_for_status()
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        found: dict[str, list[dict[str, Any]]] = {}
        for name, path in (
            ("triggers", "events/event-triggers"),
            ("definitions", "notifications/notification-definitions"),
        ):
            answer = session.get(f"{zuora.url}/{path}", params={"limit": str(PAGE)}, headers=headers, timeout=10)
            answer.raise_for_status()
            found[name] = list(answer.json()["data"])
    return found


def print_setup(made: dict[str, list[dict[str, Any]]], out: TextIO) -> None:
    """One line per notification definition: its event's base object and condition, and how it calls out."""
    triggers = {str(t["eventType"]["name"]): t for t in made["triggers"]}
    rows = []
    for definition in made["definitions"]:
        trigger = triggers.get(str(definition.get("eventTypeName")), {})
        callout = definition.get("callout") or {}
        auth = callout.get("calloutAuth") or {}
        rows.append(
            {
                "definition": definition.get("name"),
                "object": trigger.get("baseObject", "?"),
                "condition": trigger.get("condition", "(no trigger)"),
                "callout": f"{callout.get('httpMethod', '?')} {callout.get('calloutBaseurl', '?')}",
                "auth": "Basic, preemptive" if auth.get("preemptive") else "Basic after a 401 challenge",
            }
        )
    buffer = io.StringIO()
    columns = [
        ("definition", "notification definition"),
        ("object", "base object"),
        ("condition", "trigger condition"),
        ("callout", "callout"),
        ("auth", "authentication"),
    ]
    print_table(rows, columns, buffer)
    for line in buffer.getvalue().splitlines():
        print(f"        {line}".rstrip(), file=out)
