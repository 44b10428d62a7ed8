"""``make demo``: the product's main job on this machine, from changes in Zuora to records in Salesforce, checked.

The modules: ``stream`` (the changes, seeded; its step types in ``steps``, its Zuora 360 cases in ``zuora360``),
``changes`` (each change made in the Zuora stand-in, which calls out by itself, and its delivery history read
back), ``tenant`` (a change as the stand-in's record), ``zuora_setup`` (what ``zuora setup`` made in the stand-in),
``progress`` (stage lines, the live line, the waits), ``report`` (what the demo prints), ``verification``
(expectation, observation, the differences), ``run`` (the run and the command line, ``python -m
nrtsync_local.demo``).
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
