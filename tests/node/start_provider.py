"""Start a sandbox and a provider on free loopback ports for the Node SDK tests.

    EMAILKIT_PROVIDER_API_KEY=<key> .venv/bin/python tests/node/start_provider.py

Prints one JSON line (``{"provider": URL, "mailpit": URL}``) once both accept connections,
then serves until its standard input closes (the test process exiting closes it) or
SIGTERM. The API key comes from the environment so it never appears on any output.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from emailkit.provider import Provider
from emailkit.sandbox import Sandbox

__all__ = ["main"]


def main() -> int:
    api_key = os.environ.get("EMAILKIT_PROVIDER_API_KEY")
    if not api_key:
        print("start_provider.py: set EMAILKIT_PROVIDER_API_KEY (the key the tests will use)", file=sys.stderr)
        return 2
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with Sandbox() as box, Provider(box.api_url, box.smtp_host, box.smtp_port, api_key=api_key,
                                    poll_interval=0.1, webhook_wait_initial=0.05, webhook_attempts=3) as provider:
        print(json.dumps({"provider": provider.url, "mailpit": box.api_url}), flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
        stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
