"""``make demo``: the product's main job on this machine, from Zuora callouts to records in Salesforce, checked.

The modules: ``stream`` (the callout stream, seeded; its step types in ``steps``), ``sender`` (callouts over
HTTP as Zuora sends them), ``progress`` (stage lines, the live line, the waits), ``report`` (what the demo
prints), ``verification`` (expectation, observation, the differences), ``run`` (the run and the command line,
``python -m nrtsync_local.demo``).
"""

from nrtsync_local.demo.run import EXIT_INTERRUPTED, DemoOptions, DemoRun, main, run_demo
from nrtsync_local.demo.verification import (
    EXIT_MISMATCH,
    EXIT_OK,
    Expectation,
    ExpectedRecord,
    Observation,
    expect,
    observe,
    print_verdict,
    verify,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_MISMATCH",
    "EXIT_OK",
    "DemoOptions",
    "DemoRun",
    "Expectation",
    "ExpectedRecord",
    "Observation",
    "expect",
    "main",
    "observe",
    "print_verdict",
    "run_demo",
    "verify",
]
