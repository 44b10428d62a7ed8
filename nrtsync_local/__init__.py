"""The product on one machine: moto, a Salesforce stand-in, and the real handlers (not deployed code)."""
