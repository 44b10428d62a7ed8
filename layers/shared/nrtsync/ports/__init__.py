"""Contracts: every interface (``Protocol``) a service uses and the values that cross it. See docs/ARCHITECTURE.md."""
