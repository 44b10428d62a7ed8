"""Near real-time sync of Zuora Billing changes into Salesforce."""

__version__ = "0.1.0"
