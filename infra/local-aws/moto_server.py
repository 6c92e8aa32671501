"""moto in server mode, with every DynamoDB request handled one at a time.

moto's server is threaded, and its DynamoDB backend is not thread-safe: TransactWriteItems
checks conditions, writes, and on failure restores a deep copy of the whole table, so two
concurrent transactions can both pass `available >= :q` (overselling) or one can roll back the
other's committed write. Real DynamoDB transactions are serialisable. Handling DynamoDB (and
DynamoDB Streams) requests under one lock restores that guarantee locally; every other service
stays concurrent, so SQS long polls do not block anything. DynamoDB and its streams run in a
second moto process behind this one (split.py; LOCAL_AWS_ONE_PROCESS=1 keeps one), so that the
other services do not wait for DynamoDB's share of one Python core.

It applies the fixes in `moto_fixes.py` (moto's defects the shop runs into, each named with the
conformance check that proves it and the AWS documentation it follows), unless the environment
sets LOCAL_AWS_UNPATCHED=1 (to measure plain moto). GET /_local/fixes lists the fixes applied;
POST /_local/config {"stream_retention_seconds": N} changes how long stream records are kept
(default 24 h, as AWS). POST /_local/faults switches on EventBridge faults for a while (faults.py).

It also counts DynamoDB capacity as on-demand billing would (request units, assuming items under
1 KB for writes and 4 KB for reads), served at GET /_local/dynamodb-usage, so the local system
can report what each order costs. GET /_local/requests counts every request by operation.
GET /_local/memory says what moto holds that grows in a long run (holdings.py).

Same options as `moto_server`: -H HOST -p PORT.
"""

import argparse
import json
import logging
import os
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

from faults import BusFaults
import holdings
import split


def request_units(operation: str, body: dict) -> tuple[float, float]:
    """(read units, write units) of one DynamoDB request on an on-demand table."""
    strong = 1.0 if body.get("ConsistentRead") else 0.5
    if operation == "GetItem":
        return strong, 0.0
    if operation == "BatchGetItem":
        keys = sum(len(t.get("Keys", [])) for t in body.get("RequestItems", {}).values())
        return keys * 1.0, 0.0
    if operation in ("Query", "Scan"):
        return strong, 0.0
    if operation == "TransactGetItems":
        return 2.0 * len(body.get("TransactItems", [])), 0.0
    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return 0.0, 1.0
    if operation == "BatchWriteItem":
        return 0.0, float(sum(len(r) for r in body.get("RequestItems", {}).values()))
    if operation == "TransactWriteItems":
        return 0.0, 2.0 * len(body.get("TransactItems", []))
    return 0.0, 0.0


def json_response(start_response, value, status: str = "200 OK"):
    body = json.dumps(value).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


class SerialiseDynamoDB:
    def __init__(self, app, fixes: list[str], dynamodb: "split.DynamoDBProcess | None" = None):
        self.app = app
        # DynamoDB in a process of its own (split.py), which serialises and counts it itself.
        self.dynamodb = dynamodb
        self.fixes = fixes
        self.lock = threading.Lock()
        self.usage = {"read_units": 0.0, "write_units": 0.0, "requests": {}}
        # Every request by X-Amz-Target (service prefix and operation), to see where moto's one
        # core goes: GET /_local/requests.
        self.requests: dict[str, int] = {}
        self.requests_lock = threading.Lock()

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO")
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if self.dynamodb is not None and (
            path in ("/_local/dynamodb-usage", "/_local/config") or target.startswith("DynamoDB")
        ):
            if target:
                self.tally(environ)
            return self.dynamodb.forward(environ, start_response)
        if path == "/_local/dynamodb-usage":
            with self.lock:
                return json_response(start_response, self.usage)
        if path == "/_local/memory":
            return json_response(start_response, self.memory())
        if path == "/moto-api/reset" and self.dynamodb is not None:
            self.dynamodb.request("POST", path, b"", {})
        if path == "/_local/fixes":
            return json_response(start_response, {"fixes": self.fixes})
        if path == "/_local/requests":
            with self.requests_lock:
                counts = dict(sorted(self.requests.items()))
            return json_response(start_response, counts)
        if path == "/_local/config" and environ.get("REQUEST_METHOD") == "POST":
            return self.configure(environ, start_response)
        self.tally(environ)
        if self.fixes and target.startswith("AWSStepFunctions"):
            import moto_fixes

            moto_fixes.apply_stepfunctions()
            import moto_speedups

            moto_speedups.install()
        if not target.startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:
            if target.startswith("DynamoDB_"):  # not DynamoDBStreams_: stream reads are free for Lambda
                self.count(target.split(".")[-1], environ)
            result = self.app(environ, start_response)
            try:
                # The response is produced inside the lock, not lazily after it.
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()

    def tally(self, environ) -> None:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        key = target or f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"
        with self.requests_lock:
            self.requests[key] = self.requests.get(key, 0) + 1

    def memory(self) -> dict:
        held = holdings.what_moto_holds()
        held["rss_mib"] = {"main": holdings.rss_mib(os.getpid())}
        if self.dynamodb is not None:
            theirs = self.dynamodb.get_json("/_local/memory")
            held["dynamodb"] = theirs.get("dynamodb", {})
            held["rss_mib"]["dynamodb"] = holdings.rss_mib(self.dynamodb.process.pid)
            if "python_mib_by_file" in theirs:
                held["dynamodb_python_mib_by_file"] = theirs["python_mib_by_file"]
        return held

    def configure(self, environ, start_response):
        import moto_fixes

        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"{}")
            retention = float(body["stream_retention_seconds"])
        except (ValueError, KeyError, TypeError) as error:
            return json_response(start_response, {"error": f"bad config: {error}"}, "400 Bad Request")
        with self.lock:
            moto_fixes.settings["stream_retention_seconds"] = retention
        return json_response(start_response, moto_fixes.settings)

    def count(self, operation: str, environ) -> None:
        """Reads the body to count capacity, and puts it back for moto."""
        import io

        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(raw)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        reads, writes = request_units(operation, body)
        self.usage["read_units"] += reads
        self.usage["write_units"] += writes
        self.usage["requests"][operation] = self.usage["requests"].get(operation, 0) + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    parser.add_argument("--dynamodb-only", type=int, metavar="PARENT_PID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    if os.environ.get("LOCAL_AWS_REQUEST_LOG") != "1":
        # One line per request costs moto about 4 % of its time; failures are still logged.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    holdings.start()
    fixes = []
    if os.environ.get("LOCAL_AWS_UNPATCHED") != "1":
        import moto_fixes

        fixes = moto_fixes.apply()
        import moto_speedups

        fixes += moto_speedups.apply()
    app = DomainDispatcherApplication(create_backend_app)
    dynamodb = None
    if args.dynamodb_only is not None:
        split.watch_parent(args.dynamodb_only)
    elif os.environ.get("LOCAL_AWS_ONE_PROCESS") != "1":
        dynamodb = split.DynamoDBProcess(args.host)
    run_simple(
        args.host,
        args.port,
        BusFaults(SerialiseDynamoDB(app, fixes, dynamodb)),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
