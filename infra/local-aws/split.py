"""DynamoDB and DynamoDB Streams in a second moto process, behind the launcher's one endpoint.

moto is one Python process: every service shares one GIL, and the lock that makes DynamoDB
transactions serialisable (moto_server.py) holds it for every DynamoDB request. Measured with
py-spy during the soak, DynamoDB was the largest part of moto's time while Step Functions, SQS
and EventBridge waited for the same core. No moto service here reads another's DynamoDB state
(the state machines call EventBridge only, the host polls the streams itself), so the launcher
starts a second launcher that serves only DynamoDB and its streams, and forwards to it every
request whose X-Amz-Target is DynamoDB's (and the DynamoDB parts of /_local/: usage, stream
retention, memory); the other services stay in the first process. Clients see one endpoint.

The second process dies with the first: on Linux the kernel kills it (PR_SET_PDEATHSIG), and
elsewhere it exits within a second of seeing its parent gone. LOCAL_AWS_ONE_PROCESS=1 keeps
everything in one process (to compare).
"""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except OSError:
        pass  # not Linux: the child watches its parent instead (watch_parent)


def watch_parent(parent: int) -> None:
    """In the DynamoDB process: exit once the launcher that started it is gone."""

    def watch():
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


class DynamoDBProcess:
    """The second launcher, and a keep-alive connection to it per forwarding thread."""

    def __init__(self, host: str):
        self.host = host
        last = ""
        for _ in range(3):
            self.port = _free_port(host)
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "moto_server.py"),
                 "-H", host, "-p", str(self.port), "--dynamodb-only", str(os.getpid())],
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
            last = self._wait_ready()
            if not last:
                break
            self.process.kill()
        else:
            raise RuntimeError(f"the DynamoDB process did not start: {last}")
        self.local = threading.local()

    def _wait_ready(self) -> str:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode}"
            try:
                with urllib.request.urlopen(f"http://{self.host}:{self.port}/moto-api/", timeout=2):
                    return ""
            except OSError:
                time.sleep(0.1)
        return "no answer within 60 s"

    def _connection(self) -> http.client.HTTPConnection:
        connection = getattr(self.local, "connection", None)
        if connection is None:
            connection = self.local.connection = http.client.HTTPConnection(self.host, self.port, timeout=600)
        return connection

    def request(self, method: str, path: str, body: bytes, headers: dict) -> tuple[int, str, list, bytes]:
        for attempt in range(2):
            connection = self._connection()
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, response.reason, response.getheaders(), data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # A kept-alive connection the server had closed: the request was not read.
                connection.close()
                self.local.connection = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def forward(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in HOP_BY_HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers["Content-Length"] = str(len(body))
        path = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        status, reason, answer_headers, data = self.request(environ["REQUEST_METHOD"], path, body, headers)
        start_response(
            f"{status} {reason}",
            # The front's server writes its own Server, Date and Content-Length.
            [(k, v) for k, v in answer_headers if k.lower() not in HOP_BY_HOP | {"content-length", "server", "date"}]
            + [("Content-Length", str(len(data)))],
        )
        return [data]

    def get_json(self, path: str):
        status, _, _, data = self.request("GET", path, b"", {})
        return json.loads(data) if status == 200 else {}
