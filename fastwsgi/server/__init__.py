"""The WSGI server: listener (bind/accept), loop (epoll), connection (one socket), wsgi (one
exchange), instrumented (proxy headers, access log, metrics per exchange), body (wsgi.input),
filewrapper (sendfile), pool (threads > 0), tls (--certfile: the context and the TLS connection).
See docs/architecture.md.
"""

from .listener import BindError, Listener, open_listener, parse_bind
from .loop import Server

__all__ = ["BindError", "Listener", "Server", "open_listener", "parse_bind"]
