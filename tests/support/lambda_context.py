"""A stand-in for the Lambda context object, with the attributes Powertools reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class FakeLambdaContext:
    function_name: str = "nrtsync-ingest"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:nrtsync-ingest"
    aws_request_id: str = "8f3a6c1e-52b7-4d0a-9c3e-7b1d2f4a6e80"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/nrtsync-ingest"
    log_stream_name: str = "2024/03/05/[$LATEST]0123456789abcdef0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000
