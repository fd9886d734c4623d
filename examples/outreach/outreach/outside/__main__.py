"""`python -m outreach.outside [PORT]`: the outside services on 127.0.0.1:PORT (8700), with
one Google account (ann@workspace.example / correct horse), until Ctrl-C."""

from __future__ import annotations

import contextlib
import sys
import threading

from . import OutsideServices

if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8700
    with OutsideServices(port) as outside:
        outside.browsers.accounts["ann@workspace.example"] = "correct horse"
        print(f"outside services at {outside.url}; callbacks at {outside.callback_url}")
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
