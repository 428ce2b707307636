"""The option table (fastwsgi/config.py): one row per option drives argparse and serve(**options).

These tests hold the table to the server contract (names, defaults, types), check that the generated
flags parse to exactly the validated defaults, and that `validate()` / `fastwsgi.serve()` reject unknown
names (TypeError with a suggestion) and bad values (ValueError naming the option) before binding.
"""

import socket

import pytest

import fastwsgi
from fastwsgi import config

CONTRACT_DEFAULTS = {
    "bind": ["127.0.0.1:8000"],
    "threads": 0,
    "http_parser": "auto",
    "header_timeout": 10.0,
    "read_timeout": 30.0,
    "keep_alive": 5.0,
    "send_timeout": 30.0,
    "worker_connections": 1000,
    "backlog": 2048,
    "limit_request_line": 8190,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
    "limit_request_head": 65536,
    "limit_request_body": 1073741824,
    "allow_bare_lf": False,
    "allow_missing_host": False,
    "url_scheme": "http",
    "log_level": "info",
}


def app(environ, start_response):  # never called: validation fails first
    raise AssertionError("the application must not run")


def contract_part(options: dict) -> dict:
    """The server contract's options (issue 5 added more rows after them)."""
    return {name: options[name] for name in CONTRACT_DEFAULTS}


def test_table_matches_the_contract():
    assert contract_part(config.defaults()) == CONTRACT_DEFAULTS
    names = [option.name for option in config.OPTIONS]
    assert names[:len(CONTRACT_DEFAULTS)] == list(CONTRACT_DEFAULTS)


def test_every_option_has_help_and_a_flag_named_after_its_keyword():
    for option in config.OPTIONS:
        assert option.help
        assert "--" + option.name.replace("_", "-") in option.cli_flags


def test_server_hooks_are_not_flags():
    hooks = [option.name for option in config.OPTIONS if not option.cli]
    assert "post_fork" in hooks and "child_exit" in hooks and len(hooks) == 16 and "ssl_context" in hooks and "pre_exec" in hooks
    with pytest.raises(config.UsageError, match="unrecognized arguments: --post-fork"):
        config.parse_args(["--post-fork", "x"])


def test_hooks_check_callable_and_arity_before_any_call():
    assert config.validate({"post_fork": lambda server, worker: None})["post_fork"] is not None
    assert config.validate({"post_fork": lambda *args: None})["post_fork"] is not None
    with pytest.raises(ValueError, match=r"option 'post_fork': expected a function \(server, worker\), got 3"):
        config.validate({"post_fork": 3}, api=True)
    with pytest.raises(ValueError, match=r"must accept 2 argument\(s\) \(server, worker\); its signature is \(server\)"):
        config.validate({"post_fork": lambda server: None}, api=True)
    with pytest.raises(ValueError, match="must accept 1 argument"):
        config.validate({"worker_int": lambda worker, extra: None}, api=True)


def test_defaults_are_fresh_copies():
    first = config.defaults()
    first["bind"].append("unix:/tmp/x")
    assert config.defaults()["bind"] == ["127.0.0.1:8000"]


def test_no_flags_parse_to_the_defaults():
    spec, options = config.parse_args([])
    assert spec is None
    assert options == config.defaults() and contract_part(options) == CONTRACT_DEFAULTS


def test_generated_flags_convert_values():
    spec, options = config.parse_args([
        "-b", "127.0.0.1:0", "--bind", "[::1]:9000", "--bind", "unix:/tmp/fw.sock",
        "--threads", "4", "--http-parser", "python", "--header-timeout", "2.5",
        "--keep-alive", "0", "--limit-request-field_size", "100", "--limit-request-body", "0",
        "--allow-bare-lf", "--url-scheme", "https", "--log-level", "DEBUG", "pkg.mod:app",
    ])
    assert spec == "pkg.mod:app"
    assert options["bind"] == ["127.0.0.1:0", "[::1]:9000", "unix:/tmp/fw.sock"]
    assert options["threads"] == 4 and isinstance(options["threads"], int)
    assert options["http_parser"] == "python"
    assert options["header_timeout"] == 2.5
    assert options["keep_alive"] == 0.0
    assert options["limit_request_field_size"] == 100
    assert options["limit_request_body"] == 0
    assert options["allow_bare_lf"] is True and options["allow_missing_host"] is False
    assert options["url_scheme"] == "https" and options["log_level"] == "debug"  # (any case, as gunicorn)


def test_dashed_spelling_of_field_size_flag_is_accepted_too():
    _spec, options = config.parse_args(["--limit-request-field-size", "77"])
    assert options["limit_request_field_size"] == 77


@pytest.mark.parametrize("argv", [
    ["--threads", "-1"], ["--threads", "two"], ["--threads", "1.5"],
    ["--keep-alive", "-1"], ["--header-timeout", "0"], ["--read-timeout", "nan"],
    ["--worker-connections", "0"], ["--backlog", "0"], ["--limit-request-line", "0"],
    ["--limit-request-body", "-5"], ["--http-parser", "rust"], ["--url-scheme", "ftp"],
    ["--log-level", "loud"], ["--bind", "127.0.0.1:99999"], ["--bind", "unix:"],
    ["--bind", "::1:80"], ["--no-such-flag"], ["--threads"], ["a:b", "c:d"],
    ["--protocol", "fastcgi"], ["--bind", "fcgi://127.0.0.1:9000"], ["--bind", "uwsgi://"],
    ["--bind", "uwsgi://unix:"], ["--uwsgi-allow-from", "example.com"], ["--uwsgi-allow-from", "1.2.3.4/33"],
    ["--metrics-bind", "uwsgi://127.0.0.1:9100"], ["--metrics-bind", "http://unix:/tmp/m.sock"],
    ["--defer-accept", "-1"], ["--defer-accept", "3601"], ["--defer-accept", "0.5"],
])
def test_bad_command_lines_raise_usage_error(argv):
    with pytest.raises(config.UsageError) as info:
        config.parse_args(argv)
    assert "\n" not in str(info.value)


def test_binds_may_name_their_protocol():
    binds = ["uwsgi://127.0.0.1:9000", "uwsgi://[::1]:9000", "uwsgi://unix:/tmp/fw.sock", "http://0.0.0.0:80",
             "http://unix:/tmp/h.sock", "uwsgi://fd://3", "127.0.0.1:8000"]
    spec, options = config.parse_args([arg for bind in binds for arg in ("--bind", bind)]
                                      + ["--protocol", "uwsgi", "--uwsgi-allow-from", "10.0.0.0/8, 127.0.0.1",
                                         "--metrics-bind", "http://127.0.0.1:9100"])
    assert options["bind"] == binds
    assert options["protocol"] == "uwsgi" and options["uwsgi_allow_from"] == "10.0.0.0/8, 127.0.0.1"
    assert options["metrics_bind"] == "http://127.0.0.1:9100"
    assert config.defaults()["protocol"] == "http" and config.defaults()["uwsgi_allow_from"] == "127.0.0.1,::1"
    assert config.validate({"uwsgi_allow_from": ["10.0.0.1", "::1"]})["uwsgi_allow_from"] == "10.0.0.1,::1"


def test_proxy_protocol_flags():
    _spec, options = config.parse_args(["--proxy-protocol", "--proxy-allow-from", "10.0.0.0/16, ::1"])
    assert options["proxy_protocol"] is True and options["proxy_allow_from"] == "10.0.0.0/16, ::1"
    assert config.defaults()["proxy_protocol"] is False
    assert config.defaults()["proxy_allow_from"] == "127.0.0.1,::1"
    with pytest.raises(config.UsageError, match="'10.0.0.1/8' has host bits set"):
        config.parse_args(["--proxy-allow-from", "10.0.0.1/8"])


def test_unknown_keyword_is_a_type_error_with_a_suggestion():
    with pytest.raises(TypeError, match=r"'thread'.*did you mean 'threads'"):
        config.validate({"thread": 4})
    with pytest.raises(TypeError, match=r"'zzzz'"):
        config.validate({"zzzz": 1})


@pytest.mark.parametrize("name, value", [
    ("threads", -1), ("threads", True), ("threads", 2.5), ("keep_alive", -0.1),
    ("send_timeout", 0), ("header_timeout", float("inf")), ("worker_connections", 0),
    ("http_parser", "fast"), ("allow_bare_lf", "maybe"), ("bind", []), ("bind", "host:port"),
    ("limit_request_body", -1), ("log_level", "trace"), ("protocol", "https"), ("bind", "spdy://127.0.0.1:1"),
    ("uwsgi_allow_from", "nginx"), ("uwsgi_allow_from", 5),
    ("proxy_protocol", "v2"), ("proxy_allow_from", "haproxy"), ("proxy_allow_from", "10.0.0.1/8"),
])
def test_bad_values_are_value_errors_naming_the_option(name, value):
    with pytest.raises(ValueError, match=repr(name)):
        config.validate({name: value})


def test_python_values_are_converted_like_flags():
    options = config.validate({"threads": "3", "keep_alive": 2, "allow_missing_host": "yes",
                               "bind": "127.0.0.1:0"})
    assert options["threads"] == 3
    assert options["keep_alive"] == 2.0 and isinstance(options["keep_alive"], float)
    assert options["allow_missing_host"] is True
    assert options["bind"] == ["127.0.0.1:0"]


def test_serve_rejects_unknown_option_before_listening():
    with pytest.raises(TypeError, match="did you mean 'backlog'"):
        fastwsgi.serve(app, port=0, backlogg=10)


def test_serve_rejects_bad_value_before_listening():
    with pytest.raises(ValueError, match="'read_timeout'"):
        fastwsgi.serve(app, port=0, read_timeout=-1)


def test_validation_happens_before_bind():
    # a port we hold: a bind attempt would fail with BindError, validation must come first
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        with pytest.raises(ValueError):
            fastwsgi.serve(app, port=holder.getsockname()[1], threads=-2)
    finally:
        holder.close()


def test_process_flags_take_gunicorns_spellings():
    _spec, options = config.parse_args(["--chdir", "/srv/app", "--pythonpath", "src, lib,", "-e", "A=1",
                                        "--env", "B=x=y", "-p", "/run/fw.pid"])
    assert options["chdir"] == "/srv/app"
    assert options["pythonpath"] == ["src", "lib"]  # in the order given, empty entries dropped
    assert options["env"] == ["A=1", "B=x=y"]  # the value may hold '='
    assert options["pid"] == "/run/fw.pid"
    assert config.parse_args(["--pid", "x.pid"])[1]["pid"] == "x.pid"


@pytest.mark.parametrize("argv", [["-e", "NOEQUALS"], ["--env", "=1"], ["-e", "A=\0"], ["--chdir", ""],
                                  ["--pid", ""], ["-p"]])
def test_bad_process_flags_raise_usage_error(argv):
    with pytest.raises(config.UsageError) as info:
        config.parse_args(argv)
    assert "\n" not in str(info.value)


def test_config_files_take_the_process_options_as_lists_or_strings():
    options = config.validate({"env": "A=1", "pythonpath": ["src", "lib"], "chdir": "site", "pid": "fw.pid"})
    assert options["env"] == ["A=1"] and options["pythonpath"] == ["src", "lib"]
    assert config.validate({"pythonpath": "src,lib"})["pythonpath"] == ["src", "lib"]
    with pytest.raises(ValueError, match="'env'"):
        config.validate({"env": ["A=1", "B"]})


def test_gunicorns_config_keys_suggest_ours():
    with pytest.raises(TypeError, match="did you mean 'env'"):
        config.validate({"raw_env": ["A=1"]})
    with pytest.raises(TypeError, match="did you mean 'pid'"):
        config.validate({"pidfile": "x.pid"})


@pytest.mark.parametrize("option", [{"chdir": "/tmp"}, {"pythonpath": "src"}, {"env": ["A=1"]}])
def test_serve_refuses_what_must_happen_before_the_import(option):
    """serve() is handed an application object that is imported already: too late for these."""
    with pytest.raises(TypeError, match="before the application is imported"):
        fastwsgi.serve(app, port=0, **option)


def test_serve_validates_pid():
    with pytest.raises(ValueError, match="'pid'"):
        fastwsgi.serve(app, port=0, pid=5)


def test_anchor_paths_makes_the_servers_paths_absolute_from_the_start_directory():
    options = config.validate({"chdir": "site", "pid": "run/fw.pid", "pythonpath": ["lib", "/abs"],
                               "access_logfile": "-", "error_logfile": "logs/error.log",
                               "reload_extra_file": ["conf.ini"], "log_config": "/etc/log.json",
                               "bind": ["unix:fw.sock", "uwsgi://unix:u.sock", "127.0.0.1:0", "unix:/abs.sock"]})
    anchored = config.anchor_paths(options, "/start")
    assert anchored["chdir"] == "/start/site" and anchored["pid"] == "/start/run/fw.pid"
    assert anchored["pythonpath"] == ["/start/lib", "/abs"]
    assert anchored["access_logfile"] == "-" and anchored["error_logfile"] == "/start/logs/error.log"
    assert anchored["reload_extra_file"] == ["/start/conf.ini"] and anchored["log_config"] == "/etc/log.json"
    assert anchored["bind"] == ["unix:/start/fw.sock", "uwsgi://unix:/start/u.sock", "127.0.0.1:0",
                                "unix:/abs.sock"]
    assert options["pid"] == "run/fw.pid"  # a copy: the input is unchanged


def test_no_request_hook_means_the_application_itself_is_served():
    from fastwsgi import hooks

    def app(environ, start_response):
        return []

    assert hooks.wrap_app(app, config.defaults(), None) is app
    options = config.validate({"post_request": lambda worker, req, environ, resp: None})
    assert hooks.wrap_app(app, options, None) is not app


@pytest.mark.parametrize("value,expected", [
    (0, "none"), (1, "optional"), (2, "required"), ("2", "required"), ("Optional", "optional"),
    ("none", "none"), (__import__("ssl").CERT_REQUIRED, "required")])
def test_cert_reqs_takes_gunicorns_numbers_and_names(value, expected):
    assert config.validate({"cert_reqs": value})["cert_reqs"] == expected


@pytest.mark.parametrize("value", [3, -1, True, "yes", "", None])
def test_cert_reqs_rejects_other_values(value):
    with pytest.raises(ValueError, match="option 'cert_reqs'"):
        config.validate({"cert_reqs": value})


def test_serve_checks_the_certificate_before_listening(tmp_path, monkeypatch):
    """A TLS mistake stops serve() with one RuntimeError line before any socket is bound."""
    import fastwsgi.cli

    def no_listening(*args, **kwargs):
        raise AssertionError("the sockets were opened before the certificate was checked")

    monkeypatch.setattr(fastwsgi.cli, "open_listeners", no_listening)
    with pytest.raises(RuntimeError, match="--certfile .*missing.pem"):
        fastwsgi.serve(app, certfile=str(tmp_path / "missing.pem"))
    with pytest.raises(RuntimeError, match="--certfile .*missing.pem"):
        fastwsgi.serve(app, workers=2, certfile=str(tmp_path / "missing.pem"))


def test_serve_names_gunicorns_spelling_and_refuses_what_fastwsgi_lacks():
    with pytest.raises(TypeError, match="did you mean 'keep_alive'\\? 'keepalive' is gunicorn's name for it"):
        fastwsgi.serve(app, port=0, keepalive=5)
    with pytest.raises(TypeError, match="gunicorn's 'statsd_host' is not supported: .*--metrics-bind"):
        fastwsgi.serve(app, port=0, statsd_host="localhost:8125")
    with pytest.raises(ValueError, match="option 'worker_class': 'gevent' is a green-thread worker"):
        fastwsgi.serve(app, port=0, worker_class="gevent")
    assert "statsd_host" not in config.defaults() and config.defaults()["worker_class"] == "sync"


def test_gunicorn_names_are_aliases_of_one_row_each():
    assert config.ALIASES["keepalive"] == "keep_alive" and config.ALIASES["logconfig_dict"] == "log_config"
    assert not set(config.ALIASES) & set(config.BY_NAME)  # an alias never shadows a row
    doc = config.render_markdown()
    assert "`keep_alive` (gunicorn: `keepalive`)" in doc and "`--sendfile`, `--no-sendfile`" in doc


@pytest.mark.parametrize("value, expected", [
    ("1", True), ("y", True), ("Yes", True), ("TRUE", True),  # gunicorn's only "on" values
    ("0", False), ("n", False), ("no", False), ("False", False), ("off", False), ("", False),
])
def test_sendfile_variable_is_read_as_gunicorn_reads_it(value, expected):
    assert config.resolve([], environ={"SENDFILE": value})[1]["sendfile"] is expected
    assert config.resolve(["--no-sendfile"], environ={"SENDFILE": value})[1]["sendfile"] is False
    assert config.resolve(["--sendfile"], environ={"SENDFILE": value})[1]["sendfile"] is True


@pytest.mark.parametrize("value", ["on", "2", "enabled"])
def test_sendfile_variable_gunicorn_would_read_as_off_is_an_error(value):
    with pytest.raises(config.UsageError, match=f"^environment variable SENDFILE: .*got {value!r}$"):
        config.resolve([], environ={"SENDFILE": value})


@pytest.mark.parametrize("mode", ["v1", "v2", "auto", "off", "V2"])
def test_a_gunicorn_proxy_protocol_mode_is_refused_by_name(mode):
    """gunicorn 24.1's `--proxy-protocol MODE`: argparse would take MODE for the application (and
    complain about the real one); the error names the flag and says what to write instead."""
    with pytest.raises(config.UsageError, match=r"--proxy-protocol: takes no mode .*give --proxy-protocol alone"):
        config.parse_args(["--proxy-protocol", mode, "myapp:app"])


def test_the_proxy_protocol_flag_still_takes_the_application_after_it():
    spec, options = config.parse_args(["--proxy-protocol", "myapp:app"])
    assert spec == "myapp:app" and options["proxy_protocol"] is True
