"""The server's options: one typed table drives the command-line flags and `serve(**options)`.

Theory of operation: each `Option` row carries the Python keyword, the flags, a converter that turns a
value (a CLI string or a Python object) into the typed value or raises ValueError with a short reason,
the default and the help text. `build_parser()` generates argparse flags from the rows; `validate()`
checks keyword arguments against the same rows (unknown name -> TypeError with a close-match
suggestion, bad value -> ValueError naming the option). Nothing else lists the options.
"""

import argparse
import difflib
import math
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Option", "OPTIONS", "defaults", "validate", "build_parser", "UsageError"]


class UsageError(Exception):
    """A command-line mistake: shown as one line, exit status 2."""


# -- converters: value -> typed value, or ValueError("reason") ---------------------------------

def _integer(value) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    raise ValueError(f"expected an integer, got {value!r}")


def _number(value) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number, not a bool")
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    else:
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {value!r}")
    return number


def int_at_least(minimum: int) -> Callable[[Any], int]:
    def convert(value) -> int:
        number = _integer(value)
        if number < minimum:
            raise ValueError(f"must be >= {minimum}, got {number}")
        return number
    convert.__name__ = f"int>={minimum}"
    return convert


def positive_float(value) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError(f"must be > 0, got {value!r}")
    return number


def non_negative_float(value) -> float:
    number = _number(value)
    if number < 0:
        raise ValueError(f"must be >= 0, got {value!r}")
    return number


def boolean(value) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        return value.lower() in ("1", "true", "yes", "on")
    raise ValueError(f"expected a bool, got {value!r}")


def choice(*choices: str) -> Callable[[Any], str]:
    def convert(value) -> str:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return value
    convert.choices = choices
    return convert


def bind_list(value) -> list:
    from .server.listener import BindError, parse_bind  # late: keep config importable alone

    addresses = [value] if isinstance(value, str) else value
    if not isinstance(addresses, (list, tuple)) or not addresses:
        raise ValueError(f"expected an address or a non-empty list of addresses, got {value!r}")
    for address in addresses:
        try:
            parse_bind(address)
        except BindError as exc:
            raise ValueError(str(exc)) from None
    return list(addresses)


# -- the table -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Option:
    name: str  # Python keyword (flag without dashes, '-' -> '_')
    convert: Callable[[Any], Any]
    default: Any
    help: str
    flags: tuple = ()  # extra spellings; "--" + name with '_' -> '-' is always a flag
    metavar: str | None = None
    repeatable: bool = False  # list option: each flag use appends

    @property
    def cli_flags(self) -> tuple:
        return self.flags + (f"--{self.name.replace('_', '-')}",)

    @property
    def is_flag(self) -> bool:
        return self.convert is boolean


OPTIONS = (
    Option("bind", bind_list, ["127.0.0.1:8000"],
           "address to listen on: HOST:PORT, [IPV6]:PORT or unix:PATH (repeatable)",
           flags=("-b",), metavar="ADDR", repeatable=True),
    Option("threads", int_at_least(0), 0,
           "0: call the application on the event-loop thread; N: run it on a pool of N threads",
           metavar="N"),
    Option("http_parser", choice("auto", "c", "python"), "auto", "HTTP parser backend"),
    Option("header_timeout", positive_float, 10.0,
           "seconds allowed to receive one request head", metavar="S"),
    Option("read_timeout", positive_float, 30.0,
           "idle seconds allowed while reading a request body", metavar="S"),
    Option("keep_alive", non_negative_float, 5.0,
           "idle seconds a connection is kept between requests (0: no keep-alive)", metavar="S"),
    Option("send_timeout", positive_float, 30.0,
           "seconds a response write may stall on a slow client", metavar="S"),
    Option("worker_connections", int_at_least(1), 1000,
           "maximum simultaneous connections (more wait in the backlog)", metavar="N"),
    Option("backlog", int_at_least(1), 2048, "listen backlog", metavar="N"),
    Option("limit_request_line", int_at_least(1), 8190,
           "maximum request-line length (longer: 414)", metavar="N"),
    Option("limit_request_fields", int_at_least(1), 100,
           "maximum number of header fields (more: 431)", metavar="N"),
    Option("limit_request_field_size", int_at_least(1), 8190,
           "maximum header field line length (longer: 431)", metavar="N",
           flags=("--limit-request-field_size",)),
    Option("limit_request_head", int_at_least(1), 65536,
           "maximum size of the whole request head (larger: 431)", metavar="N"),
    Option("limit_request_body", int_at_least(0), 1073741824,
           "maximum request body in bytes (larger: 413 before reading); 0: no limit", metavar="N"),
    Option("allow_bare_lf", boolean, False, "accept LF without CR as a line end (lenient)"),
    Option("allow_missing_host", boolean, False, "accept HTTP/1.1 requests without Host (lenient)"),
    Option("url_scheme", choice("http", "https"), "http", "wsgi.url_scheme to report"),
    Option("log_level", choice("debug", "info", "warning", "error", "critical"), "info",
           "logging level of the fastwsgi loggers"),
)

BY_NAME = {option.name: option for option in OPTIONS}


def defaults() -> dict:
    return {option.name: (list(option.default) if isinstance(option.default, list) else option.default)
            for option in OPTIONS}


def validate(options: dict) -> dict:
    """Return a complete, typed option dict; TypeError for unknown names, ValueError for bad values."""
    result = defaults()
    for name, value in options.items():
        option = BY_NAME.get(name)
        if option is None:
            close = difflib.get_close_matches(name, BY_NAME, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(f"unknown option {name!r}{hint}")
        try:
            result[name] = option.convert(value)
        except ValueError as exc:
            raise ValueError(f"option {name!r}: {exc}") from None
    return result


# -- command line ------------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse that reports a mistake as one line (UsageError) instead of usage + exit."""

    def error(self, message):
        raise UsageError(message)


def _cli_type(option: Option):
    def convert(text):
        try:
            value = option.convert([text] if option.repeatable else text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value[0] if option.repeatable else value
    convert.__name__ = option.name
    return convert


def build_parser(prog: str = "fastwsgi", version: str = "") -> argparse.ArgumentParser:
    parser = _Parser(prog=prog, description="A fast PEP 3333 WSGI server for HTTP/1.1.",
                     allow_abbrev=False)
    parser.add_argument("app", nargs="?", metavar="MODULE:APP",
                        help="the application: module:name, module (then `application` or `app`), "
                             "or module:factory(args); default: the built-in demo")
    for option in OPTIONS:
        if option.is_flag:
            parser.add_argument(*option.cli_flags, dest=option.name, action="store_true",
                                default=option.default, help=option.help)
        elif option.repeatable:
            parser.add_argument(*option.cli_flags, dest=option.name, action="append",
                                type=_cli_type(option), metavar=option.metavar,
                                help=f"{option.help} (default: {' '.join(option.default)})")
        else:
            choices = getattr(option.convert, "choices", None)
            parser.add_argument(*option.cli_flags, dest=option.name, type=_cli_type(option),
                                default=option.default, metavar=option.metavar or
                                ("{" + ",".join(choices) + "}" if choices else None),
                                help=f"{option.help} (default: {option.default})")
    parser.add_argument("--version", action="version", version=version)
    return parser


def parse_args(argv, version: str = ""):
    """-> (app spec or None, validated options); raises UsageError."""
    namespace = build_parser(version=version).parse_args(argv)
    options = {option.name: getattr(namespace, option.name) for option in OPTIONS}
    if options["bind"] is None:  # no -b given: the table's default
        del options["bind"]
    try:
        return namespace.app, validate(options)
    except (TypeError, ValueError) as exc:
        raise UsageError(str(exc)) from None
