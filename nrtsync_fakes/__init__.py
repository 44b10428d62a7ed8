"""In-memory fakes of the shared layer's ports, one module per port family, for unit tests, benchmarks and tools.

Each fake keeps the semantics the services rely on; the contract tests in ``tests/integration`` run the same cases
against a fake and its real adapter on moto, so the two cannot drift apart.
"""
