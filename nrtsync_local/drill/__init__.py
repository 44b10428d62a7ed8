"""The fault drill (``python -m nrtsync_local.drill``, ``make soak``): ``run`` (the run, the kill switch, the command
line), ``config`` (its knobs), ``generator`` (the change stream), ``sender`` (HTTP and queue delivery),
``scheduler`` (delivery timing, the fault schedule), ``verdict`` (the checks and the report); and ``pause``, the
long-pause drill of the circuit breaker on a simulated clock."""
