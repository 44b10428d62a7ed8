"""The local API Gateway: ``server`` is the HTTP server in front of the ingest function; ``rules`` is what API
Gateway's REST API does around a Lambda proxy integration (the proxy event, header remapping, gateway responses,
the Lambda authorizer), read from the template."""
