"""Test-wide environment: set before any handler module is imported, as Lambda sets it before the import."""

import os

os.environ.setdefault("AWS_DEFAULT_REGION", "eu-west-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_SECURITY_TOKEN", "testing")
os.environ.setdefault("AWS_SESSION_TOKEN", "testing")
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "nrtsync-test")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "NrtSyncTest")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "1")
os.environ.setdefault("POWERTOOLS_DEV", "0")
# Never let a developer's real AWS endpoint or profile leak into a test.
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
