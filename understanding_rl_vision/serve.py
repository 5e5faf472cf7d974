"""A localhost web server for an output folder (``understanding-rl-vision serve``, and the notebook
display of :class:`~understanding_rl_vision.rl_clarity.RunResult`). Opening interface.html from disk
works as well; serving is for sharing a port or a browser that blocks ``file://``."""

from __future__ import annotations

import functools
import http.server
import os
from pathlib import Path
from typing import cast

from .errors import UserError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def make_server(
    directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, quiet: bool = False
) -> http.server.ThreadingHTTPServer:
    """A server for ``directory`` (which must hold interface.html); port 0 picks a free one."""
    directory = Path(directory)
    if not (directory / "interface.html").is_file():
        raise UserError(f"{directory} has no interface.html; give the folder a run wrote")
    handler = functools.partial(
        _QuietHandler if quiet else http.server.SimpleHTTPRequestHandler, directory=str(directory)
    )
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def url_of(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{cast(str, host)}:{port}/interface.html"  # an AF_INET address: host is a str
