"""How the demo sends the stream: callouts over HTTP to the local callout URL as Zuora sends them, a few at a
time but one record's callouts in their order; and the HTTP answer to each."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import requests

from nrtsync_local.callouts import CalloutSender
from nrtsync_local.demo.progress import Progress
from nrtsync_local.demo.steps import Deliver, GiveUp, Happen, Phase, Stamper, Step, Version
from nrtsync_local.stack import LocalDeployment

SENDERS = 4


@dataclass(frozen=True)
class Answer:
    """The HTTP answer to one callout."""

    phase: int
    what: str
    object_type: str | None
    record_id: str | None
    notification_id: str
    expected: int
    status: int
    error: str
    detail: str
    version: Version | None = None

    @property
    def as_expected(self) -> bool:
        return self.status == self.expected


class StreamSender:
    """Plays the stream's steps: a change happens (it is dated and made in the tenant), a callout is posted."""

    def __init__(self, stack: LocalDeployment, stamper: Stamper, happened: Callable[[Version], None]) -> None:
        """``happened`` is told of each change of the tenant when it happens (``DemoTenant.happened``)."""
        self._happened = happened
        self._auth = stack.callout_auth
        self._callouts = CalloutSender(stack.callout_url, stack.callout_auth)
        self._stamper = stamper
        self._lock = threading.Lock()

    def close(self) -> None:
        self._callouts.close()

    def _stamp(self, version: Version, *, in_tenant: bool = True) -> None:
        """The change happens now: dated, and made in the tenant (``in_tenant``) under the same lock, so that
        the tenant's changes keep the order of their dates."""
        with self._lock:
            if version.updated_date is None:
                self._stamper.stamp(version)
                if in_tenant:
                    self._happened(version)

    def run(self, phase: int, step: Step) -> Answer | None:
        if isinstance(step, Happen | GiveUp):
            self._stamp(step.version)
            return None
        if isinstance(step, Deliver):
            if step.happen:
                self._stamp(step.version)
            version = step.version
            response = self._callouts.post(
                version.body(), version.notification_id, auth=None if step.auth == "none" else self._auth
            )
            what = step.note or version.what
            return _answer(
                phase,
                what,
                version=version,
                notification_id=version.notification_id,
                expected=step.expected_status,
                response=response,
            )
        if step.template is not None:
            # The refused callouts test the endpoint; their records are kept out of the tenant (docs/DEMO.md).
            self._stamp(step.template, in_tenant=False)
        auth = (self._auth[0], "not-the-password") if step.auth == "wrong" else self._auth
        response = self._callouts.post(step.render(), step.notification_id, auth=auth)
        return _answer(
            phase,
            step.what,
            version=step.template,
            notification_id=step.notification_id,
            expected=step.expected_status,
            response=response,
        )


def _answer(
    phase: int, what: str, *, version: Version | None, notification_id: str, expected: int, response: requests.Response
) -> Answer:
    try:
        document = response.json()
    except ValueError:
        document = {}
    if response.status_code == 200:
        error, detail = str(document.get("status", "?")), ""
    else:
        error = str(document.get("error") or document.get("message") or "?")
        problems = document.get("errors") or []
        detail = "; ".join(f"{p.get('field')}: {p.get('message')}" for p in problems) or str(
            document.get("message", "")
        )
        if response.status_code == 401:
            detail = f"WWW-Authenticate: {response.headers.get('WWW-Authenticate', '(none)')}"
    return Answer(
        phase=phase,
        what=what,
        object_type=None if version is None else version.object_type,
        record_id=None if version is None else version.record_id,
        notification_id=notification_id,
        expected=expected,
        status=response.status_code,
        error=error,
        detail=detail[:160],
        version=version,
    )


def _step_key(step: Step) -> tuple[str, str] | str:
    if isinstance(step, Deliver | Happen | GiveUp):
        return step.version.key
    return step.notification_id


def send_phase(sender: StreamSender, number: int, phase: Phase, progress: Progress, answers: list[Answer]) -> float:
    """Sends a phase's callouts SENDERS at a time, as Zuora does, but one record's callouts in their order."""
    started = time.monotonic()
    last: dict[tuple[str, str] | str, Future[Answer | None]] = {}
    futures: list[Future[Answer | None]] = []

    def run(step: Step, before: Future[Answer | None] | None) -> Answer | None:
        if before is not None:
            before.result()  # submitted earlier, so already running or done: the pool takes work in order
        return sender.run(number, step)

    bar = progress.bar("sending")
    pool = ThreadPoolExecutor(max_workers=SENDERS, thread_name_prefix="zuora")
    try:
        for step in phase.steps:
            key = _step_key(step)
            future = pool.submit(run, step, last.get(key))
            last[key] = future
            futures.append(future)
        for done, future in enumerate(futures, 1):
            answer = future.result()
            if answer is not None:
                answers.append(answer)
            bar(done, len(futures))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # on Ctrl-C: what has not started is not sent
        progress.clear()
    return time.monotonic() - started
