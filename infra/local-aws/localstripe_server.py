"""localstripe (a third-party Stripe emulator from PyPI) bound to one interface, keeping nothing on disk.

Its own `localstripe` command listens on every interface and pickles its state to
/tmp/localstripe.pickle after each write; tests run several at once, so this runs its aiohttp app
on the given host and port with the disk dump turned off.

Options: -H HOST -p PORT.
"""

import argparse
import signal
import sys

from aiohttp import web
from localstripe import resources
from localstripe.server import app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=8420)
    args = parser.parse_args()
    type(resources.store).dump_to_disk = lambda self: None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
