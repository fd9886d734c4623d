"""The outside services the outreach tool talks to, played by one local HTTP server:

    with OutsideServices() as outside:
        outside.url                          # http://127.0.0.1:<port>
        outside.browsers.accounts["ann@x"] = "secret"
        outside.server.hold("/smartlead/campaigns/cmp-1/sequences")  # stop a request there
        outside.server.requests("/multilogin")                       # what was asked

It also plays the caller of the OAuth task manager: its completion callbacks arrive at
`outside.callback_url` and are kept, raw, in `outside.server.requests("/caller")`.
"""

from __future__ import annotations

from .browser import Browsers
from .server import Request, Response, Server
from .smartlead import Smartlead

__all__ = ["Browsers", "OutsideServices", "Request", "Response", "Server", "Smartlead"]


class OutsideServices:
    """Multilogin, Selenium, Google, Smartlead, RevReply and a callback receiver."""

    def __init__(self, port: int = 0) -> None:
        self.server = Server(port)
        self.browsers = Browsers()
        self.smartlead = Smartlead()
        self.browsers.install(self.server)
        self.smartlead.install(self.server)
        self.server.route("POST", "/caller/callbacks", lambda r: Response(200))

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def callback_url(self) -> str:
        """Where the caller of the OAuth task manager wants its completion callbacks."""
        return f"{self.url}/caller/callbacks"

    def __enter__(self) -> OutsideServices:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()
