"""The process's one TLS context, shared by every HTTP client (SP-API, LWA, report documents, Optiply)."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context() -> ssl.SSLContext:
    """Verifying, from httpx's defaults. httpx loads the CA bundle again for each client built without one
    (about 20 ms of CPU), and a run builds a dozen: most of a small tenant's SP-API CPU."""
    return httpx.create_ssl_context()
