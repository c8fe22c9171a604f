"""A loopback S3 server (moto) that counts the HTTP requests it answers.

``s3_server`` (module-scoped fixture) starts one on ``127.0.0.1`` with a bucket ``caches`` and
yields a :class:`LoopbackS3`; its ``storage_options`` open ``s3://caches/...`` URLs and its
``count()`` context manager records every request the server answers while inside it. The
counter sits in the server's WSGI application, so it sees what went over the wire, whatever the
client (s3fs, aiobotocore, boto3) did.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest


class _Counter:
    """WSGI middleware: append ``(method, path)`` of each request while recording."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.log: list[tuple[str, str]] | None = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        with self.lock:
            if self.log is not None:
                query = environ.get("QUERY_STRING", "")
                path = environ.get("PATH_INFO", "") + (f"?{query}" if query else "")
                self.log.append((environ.get("REQUEST_METHOD", ""), path))
        return self.app(environ, start_response)


class LoopbackS3:
    """A started moto S3 server; see the module docstring."""

    def __init__(self) -> None:
        from moto.moto_server.threaded_moto_server import ThreadedMotoServer
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        self.counter = _Counter(DomainDispatcherApplication(create_backend_app))
        counter = self.counter

        class _Server(ThreadedMotoServer):
            def _server_entry(self) -> None:
                self._server = make_server(
                    self._ip_address, self._port, counter, True, request_handler=MotoRequestHandler
                )
                self._server_ready_event.set()
                self._server.serve_forever()

        self.server = _Server(ip_address="127.0.0.1", port=0, verbose=False)

    def start(self, bucket: str = "caches") -> None:
        import boto3

        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)

    def stop(self) -> None:
        self.server.stop()

    @property
    def storage_options(self) -> dict[str, Any]:
        return {
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"endpoint_url": self.endpoint, "region_name": "us-east-1"},
            "skip_instance_cache": True,
        }

    @contextlib.contextmanager
    def count(self) -> Iterator[list[tuple[str, str]]]:
        """Record ``(method, path)`` of every request answered inside the block."""
        log: list[tuple[str, str]] = []
        with self.counter.lock:
            self.counter.log = log
        try:
            yield log
        finally:
            with self.counter.lock:
                self.counter.log = None


@pytest.fixture(scope="module")
def s3_server() -> Iterator[LoopbackS3]:
    """A loopback S3 server with a bucket ``caches`` (skips when s3fs or moto are missing)."""
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    pytest.importorskip("boto3")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = LoopbackS3()
    server.start()
    try:
        yield server
    finally:
        server.stop()
