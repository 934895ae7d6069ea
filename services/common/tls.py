"""Mutual TLS between Revive's processes: server credentials that demand a client certificate, and the
client credentials that present one.

Every service can serve TLS (`--tls-cert`, `--tls-key`); given `--tls-ca` as
well, it accepts only clients whose certificate that CA signed, so inside a
cluster only the gateway (which holds such a certificate) can call the
services. Empty flags mean plaintext, the embedded default on loopback.
"""

from __future__ import annotations

from pathlib import Path

import grpc


def _read(path: str) -> bytes:
    return Path(path).read_bytes()


def server_credentials(cert: str, key: str, ca: str) -> grpc.ServerCredentials | None:
    """TLS with this cert and key; with a CA, clients must present a certificate it signed. None: plaintext."""
    if not cert and not key and not ca:
        return None
    if not cert or not key:
        raise ValueError("TLS needs both --tls-cert and --tls-key")
    return grpc.ssl_server_credentials([(_read(key), _read(cert))], root_certificates=_read(ca) if ca else None,
                                       require_client_auth=bool(ca))


def channel_credentials(ca: str, cert: str, key: str) -> grpc.ChannelCredentials | None:
    """Trust servers signed by `ca`, and present `cert` (mTLS) when given. None: plaintext."""
    if not ca and not cert and not key:
        return None
    if bool(cert) != bool(key):
        raise ValueError("a client certificate needs both its cert and its key")
    return grpc.ssl_channel_credentials(root_certificates=_read(ca) if ca else None,
                                        private_key=_read(key) if key else None,
                                        certificate_chain=_read(cert) if cert else None)
