"""moto in server mode, with every DynamoDB request handled one at a time.

moto's server is threaded, and its DynamoDB backend is not thread-safe: TransactWriteItems
checks conditions, writes, and on failure restores a deep copy of the whole table, so two
concurrent transactions can both pass `available >= :q` (overselling) or one can roll back the
other's committed write. Real DynamoDB transactions are serialisable. Handling DynamoDB (and
DynamoDB Streams) requests under one lock restores that guarantee locally; every other service
stays concurrent, so SQS long polls do not block anything.

Same options as `moto_server`: -H HOST -p PORT.
"""

import argparse
import signal
import sys
import threading

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


class SerialiseDynamoDB:
    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ, start_response):
        if not environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            return self.app(environ, start_response)
        with self.lock:
            result = self.app(environ, start_response)
            try:
                # The response is produced inside the lock, not lazily after it.
                return [b"".join(result)]
            finally:
                if hasattr(result, "close"):
                    result.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=5000)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(
        args.host,
        args.port,
        SerialiseDynamoDB(app),
        threaded=True,
        request_handler=MotoRequestHandler,
    )


if __name__ == "__main__":
    main()
