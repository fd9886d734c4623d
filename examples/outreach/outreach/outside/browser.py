"""Multilogin (browser profiles with a remote debugging port), a Selenium server driving those
browsers, and the Google sign-in and OAuth consent pages the browsers visit, as one service:
the browser state lives in one place."""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit

from .server import Request, Response, Server


@dataclass
class Browser:
    """A Selenium session in a Multilogin profile: where it is and who is signed in."""

    profile_id: str
    url: str = "about:blank"
    signed_in: str | None = None


@dataclass
class Browsers:
    """The Google accounts that exist, the profiles running and the sessions driving them."""

    #: email -> password
    accounts: dict[str, str] = field(default_factory=dict)
    #: profile id -> its debugging port, while it runs
    profiles: dict[str, int] = field(default_factory=dict)
    #: profile ids started and stopped, in order
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    sessions: dict[str, Browser] = field(default_factory=dict)
    #: authorization code -> email
    codes: dict[str, str] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, server: Server) -> None:
        server.route("GET", "/multilogin/status", lambda r: Response(200, {"running": True}))
        server.route("POST", "/multilogin/profile/quick", self.start_profile)
        server.route("GET", r"/multilogin/profile/stop/([\w-]+)", self.stop_profile)
        server.route("POST", "/selenium/session", self.new_session)
        server.route("POST", r"/selenium/session/([\w-]+)/url", self.navigate)
        server.route("GET", r"/selenium/session/([\w-]+)/url", self.current_url)
        server.route("DELETE", r"/selenium/session/([\w-]+)", self.end_session)
        server.route("POST", "/google/oauth/token", self.token)

    def start_profile(self, request: Request) -> Response:
        with self._lock:
            n = next(self._ids)
            profile = f"profile-{n}"
            self.profiles[profile] = 40_000 + n
            self.started.append(profile)
        return Response(200, {"IsSuccess": True, "Port": str(40_000 + n), "Id": profile})

    def stop_profile(self, request: Request) -> Response:
        (profile,) = request.params
        with self._lock:
            if self.profiles.pop(profile, None) is None:
                return Response(404, {"IsSuccess": False})
            self.stopped.append(profile)
        return Response(200, {"IsSuccess": True})

    def new_session(self, request: Request) -> Response:
        options = request.body["capabilities"]["goog:chromeOptions"]
        port = int(options["debuggerAddress"].rsplit(":", 1)[1])
        with self._lock:
            profile = next((p for p, at in self.profiles.items() if at == port), None)
            if profile is None:
                return Response(500, {"value": {"error": f"no browser on port {port}"}})
            session = f"session-{next(self._ids)}"
            self.sessions[session] = Browser(profile)
        return Response(200, {"value": {"sessionId": session}})

    def navigate(self, request: Request) -> Response:
        browser = self.sessions[request.params[0]]
        parts = urlsplit(request.body["url"])
        query = dict(parse_qsl(parts.query))
        with self._lock:
            browser.url = self._page(browser, parts.path, query)
        return Response(200, {"value": None})

    def _page(self, browser: Browser, path: str, query: dict[str, str]) -> str:
        """Where the browser lands after opening `path`: the sign-in and consent pages."""
        if path.endswith("/google/signin"):
            if self.accounts.get(query.get("email", "")) != query.get("password"):
                return "/google/signin?error=wrong_password"
            browser.signed_in = query["email"]
            return "/google/myaccount"
        if path.endswith("/google/oauth/authorize"):
            if browser.signed_in is None:
                return "/google/signin?error=signin_required"
            code = f"code-{next(self._ids)}"
            self.codes[code] = browser.signed_in
            return f"{query['redirect_uri']}?{urlencode({'code': code})}"
        return path

    def current_url(self, request: Request) -> Response:
        return Response(200, {"value": self.sessions[request.params[0]].url})

    def end_session(self, request: Request) -> Response:
        with self._lock:
            self.sessions.pop(request.params[0], None)
        return Response(200, {"value": None})

    def token(self, request: Request) -> Response:
        with self._lock:
            email = self.codes.pop(request.body["code"], None)
        if email is None:
            return Response(400, {"error": "invalid_grant"})
        return Response(200, {"access_token": f"at-{email}", "refresh_token": f"rt-{email}",
                              "email": email})  # fmt: skip
