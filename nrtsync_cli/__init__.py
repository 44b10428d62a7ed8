"""The operator's command line (``nrtsync``): tools for a person at a terminal, never shipped to Lambda."""
