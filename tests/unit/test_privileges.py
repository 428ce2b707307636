"""--user/--group/--initgroups (fastwsgi/privileges.py): the converters of the option table and
`credentials()`, which decides before anything listens what the workers switch to. The switch itself
is tested on real processes in tests/functional/test_privileges.py."""

import grp
import os
import pwd

import pytest

from fastwsgi import config
from fastwsgi.privileges import Credentials, PrivilegeError, credentials

NOBODY = pwd.getpwnam("nobody")


def options(**given) -> dict:
    return config.validate(given)


@pytest.mark.parametrize("value,expected", [("nobody", "nobody"), ("65534", 65534), (65534, 65534),
                                            (" 12 ", 12), (0, 0)])
def test_user_is_a_known_name_or_a_numeric_id(value, expected):
    assert options(user=value)["user"] == expected


@pytest.mark.parametrize("value", ["fw-no-such-user", "", -1, 2**32 - 1, "4294967295", True, 1.5, ["nobody"]])
def test_bad_users_are_value_errors_naming_the_option(value):
    with pytest.raises(ValueError, match="'user'"):
        options(user=value)


def test_groups_are_checked_like_users():
    assert options(user="nobody", group="daemon")["group"] == "daemon"
    assert config.parse_args(["-u", "nobody", "-g", "1"])[1]["group"] == 1
    with pytest.raises(config.UsageError, match="no such group 'fw-no-such-group'"):
        config.parse_args(["-g", "fw-no-such-group"])


@pytest.mark.skipif(os.geteuid() != 0, reason="credentials() refuses a switch to a process that is not root")
def test_credentials_default_to_the_users_primary_group():
    assert credentials(options(user="nobody")) == Credentials(NOBODY.pw_uid, NOBODY.pw_gid, "nobody", False)
    daemon = grp.getgrnam("daemon").gr_gid
    assert credentials(options(user=NOBODY.pw_uid, group="daemon", initgroups=True)) == \
        Credentials(NOBODY.pw_uid, daemon, "nobody", True)
    assert credentials(options(user=4242424, group=7)) == Credentials(4242424, 7, "4242424", False)


def test_no_switch_when_already_that_user_or_none_asked():
    assert credentials(options()) is None
    me = pwd.getpwuid(os.geteuid())
    if me.pw_gid == os.getegid():
        assert credentials(options(user=me.pw_name)) is None
    assert credentials(options(user=os.geteuid(), group=os.getegid())) is None


@pytest.mark.parametrize("given,message", [
    ({"group": "daemon"}, "--group daemon needs --user"),
    ({"initgroups": True}, "--initgroups needs --user"),
    ({"user": 4242424}, "give --group too"),
    ({"user": 4242424, "group": 1, "initgroups": True}, "no passwd entry"),
])
def test_impossible_combinations_are_privilege_errors(given, message):
    with pytest.raises(PrivilegeError, match=message):
        credentials(options(**given))
