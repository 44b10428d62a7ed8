"""``nrtsync zuora setup`` and ``zuora check``: Zuora's event triggers and notification definitions for a stack."""
