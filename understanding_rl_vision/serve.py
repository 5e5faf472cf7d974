"""Showing an output folder: a localhost web server (``understanding-rl-vision serve``) and the
notebook display of :class:`RunResult`. Opening interface.html from disk works as well; serving
is for sharing a port or a browser that blocks ``file://``."""

from __future__ import annotations

import functools
import html
import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UserError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # one line per request is noise
        pass


def make_server(directory: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000,
                quiet: bool = False) -> http.server.ThreadingHTTPServer:  # fmt: skip
    """A server for ``directory`` (which must hold interface.html); port 0 picks a free one."""
    directory = Path(directory)
    if not (directory / "interface.html").is_file():
        raise UserError(f"{directory} has no interface.html; give the folder a run wrote")
    handler = functools.partial(_QuietHandler if quiet else http.server.SimpleHTTPRequestHandler,
                                directory=str(directory))  # fmt: skip
    try:
        return http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def url_of(server: http.server.HTTPServer) -> str:
    host, port = server.server_address[:2]
    return f"http://{host}:{port}/interface.html"


@dataclass
class RunResult:
    """What :func:`rl_clarity.run` returns: where the interface is. In a notebook it displays
    the interface inline, served from a background localhost server."""

    path: Path
    """The interface.html written by the run."""
    rank: int = 0
    """This process's MPI rank; only rank 0 writes the output and reports it."""
    _server: http.server.HTTPServer | None = field(default=None, repr=False)

    @property
    def directory(self) -> Path:
        return self.path.parent

    def serve(self, port: int = 0) -> str:
        """Start (once) a background server for the folder; returns the interface's URL."""
        if self._server is None:
            self._server = make_server(self.directory, port=port, quiet=True)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return url_of(self._server)

    def _repr_html_(self) -> str:
        url = html.escape(self.serve(), quote=True)
        return (f'<iframe src="{url}" style="width:100%;height:820px;border:1px solid #ccc" '
                f'title="understanding-rl-vision interface"></iframe>'
                f'<p><a href="{url}" target="_blank" rel="noopener">open in a new tab</a> · '
                f"{html.escape(str(self.path))}</p>")  # fmt: skip

    def __str__(self) -> str:
        return str(self.path)
