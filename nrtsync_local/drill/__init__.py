"""The fault drill's parts: the change stream it sends (``generator``), delivery timing and the fault schedule
(``scheduler``), the checks and the report (``verdict``). The drill itself is ``nrtsync_local.drill.run``."""
