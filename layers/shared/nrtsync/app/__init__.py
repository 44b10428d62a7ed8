"""One module per function: its settings (read once, cached), its assembly (``build_<function>``, with a keyword
override per port) and its reporting (``report_*``, given the service's result).

The assemblies import adapters and services inside their bodies, not at module level: a handler imports its app
module on a cold start, and only what its own function builds should load then (``tests/unit/test_cold_imports``
guards which packages each function loads).
"""
