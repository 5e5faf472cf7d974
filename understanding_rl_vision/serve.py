"""A localhost web server for an output folder or a site of runs (``understanding-rl-vision serve``,
and the notebook display of :class:`~understanding_rl_vision.rl_clarity.RunResult`). Opening
interface.html or a site's index.html from disk works as well; serving is for sharing a port or a
browser that blocks ``file://``."""

from __future__ import annotations

import functools
import http.server
import os
from pathlib import Path
from typing import cast

from .errors import UserError

PAGES = ("interface.html", "index.html")
"""What a served folder opens at: a run's page, else a site's index."""


class Server(http.server.ThreadingHTTPServer):
    page: str = PAGES[0]
    """The page the folder opens at."""


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def make_server(
    directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, quiet: bool = False
) -> Server:
    """A server for ``directory`` (a run's output or a site: one of :data:`PAGES`); port 0 picks a free one."""
    directory = Path(directory)
    page = next((p for p in PAGES if (directory / p).is_file()), None)
    if page is None:
        raise UserError(f"{directory} has no interface.html or index.html; give the folder a run or site wrote")
    handler = functools.partial(
        _QuietHandler if quiet else http.server.SimpleHTTPRequestHandler, directory=str(directory)
    )
    try:
        server = Server((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    server.page = page
    return server


def url_of(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    page = server.page if isinstance(server, Server) else PAGES[0]
    return f"http://{cast(str, host)}:{port}/{page}"  # an AF_INET address: host is a str
