#!/usr/bin/env python
"""Exit 0 when the scorer's ``grpc.health.v1`` service answers SERVING, else 1.

The container healthcheck of Docker Compose (Kubernetes calls the same RPC with its
native ``grpc:`` probe). Port: ``RISKSTREAM_SCORING_PORT`` (50051). With TLS on
(``RISKSTREAM_SCORING_TLS_CERT_FILE``) the server's own certificate is the trust root
and ``localhost`` the name checked, so the certificate must name it.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main() -> int:
    target = f"127.0.0.1:{os.environ.get('RISKSTREAM_SCORING_PORT', '50051')}"
    cert = os.environ.get("RISKSTREAM_SCORING_TLS_CERT_FILE")
    if cert:
        with open(cert, "rb") as f:
            credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = (("grpc.ssl_target_name_override", "localhost"),)
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        channel = grpc.insecure_channel(target)
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=3
        )
    except grpc.RpcError as exc:
        print(f"{target}: {exc.code().name}", file=sys.stderr)  # type: ignore[attr-defined]
        return 1
    finally:
        channel.close()
    return 0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main())
