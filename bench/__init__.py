"""Benchmarks of nrtsync on this machine (``make bench`` = ``.venv/bin/python -m bench.run``); not tests."""
