"""Tests for the ``toml_value`` and ``toml_key`` filters.

Every rendered literal is parsed back with ``tomllib`` (the TOML 1.0 parser
of the standard library): whatever goes in must come out unchanged, and no
value may add keys or tables to the document it is rendered into.
"""

import json
import math
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings, strategies as st

from ansible.errors import AnsibleFilterError
from ansible_collections.hardened.gitlab_runner.plugins.filter.toml import (
    FilterModule,
    toml_key,
    toml_value,
)

INT64_MIN = -(2 ** 63)
INT64_MAX = 2 ** 63 - 1

# Any Unicode scalar value: everything but the surrogates.
TEXT = st.text(st.characters(exclude_categories=("Cs",)))
SCALARS = (
    TEXT
    | st.booleans()
    | st.integers(min_value=INT64_MIN, max_value=INT64_MAX)
    | st.floats(allow_nan=True, allow_infinity=True)
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=25,
)


def same(expected, actual):
    """Compare like ``==`` but strictly: types must match, nan equals nan
    and the sign of zero counts."""
    if type(expected) is not type(actual):
        return False
    if isinstance(expected, float):
        if math.isnan(expected):
            return math.isnan(actual)
        return expected == actual and (
            math.copysign(1.0, expected) == math.copysign(1.0, actual)
        )
    if isinstance(expected, list):
        return len(expected) == len(actual) and all(
            same(a, b) for a, b in zip(expected, actual)
        )
    if isinstance(expected, dict):
        return expected.keys() == actual.keys() and all(
            same(expected[key], actual[key]) for key in expected
        )
    return expected == actual


def load_value(literal):
    """Parse ``literal`` as the value of a key; return that value."""
    document = tomllib.loads("key = %s\n" % literal)
    assert list(document) == ["key"]
    return document["key"]


# --- round trips -----------------------------------------------------------

@given(TEXT)
def test_any_string_round_trips(text):
    assert load_value(toml_value(text)) == text


@given(st.integers(min_value=INT64_MIN, max_value=INT64_MAX))
def test_any_int64_round_trips(number):
    assert same(number, load_value(toml_value(number)))


@given(st.booleans())
def test_bool_round_trips(flag):
    assert same(flag, load_value(toml_value(flag)))


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_round_trips(number):
    assert same(number, load_value(toml_value(number)))


@given(st.lists(SCALARS, max_size=10))
def test_heterogeneous_list_round_trips(items):
    assert same(items, load_value(toml_value(items)))


@settings(max_examples=300)
@given(VALUES)
def test_nested_values_round_trip(value):
    assert same(value, load_value(toml_value(value)))


@given(TEXT)
def test_any_key_round_trips(key):
    document = tomllib.loads("%s = 1\n" % toml_key(key))
    assert document == {key: 1}


@given(st.dictionaries(TEXT, VALUES, max_size=5))
def test_mapping_as_table_body_round_trips(mapping):
    """Render a mapping as ``key = value`` lines of a table, like the
    config.toml template does for free-form tables such as sysctls."""
    body = "".join(
        "%s = %s\n" % (toml_key(key), toml_value(item))
        for key, item in mapping.items()
    )
    document = tomllib.loads("[table]\n" + body)
    assert list(document) == ["table"]
    assert same(mapping, document["table"])


# --- literal forms ---------------------------------------------------------

@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\path\\", '"C:\\\\path\\\\"'),
        ("a\r\nb", '"a\\r\\nb"'),
        ("\b\t\f", '"\\b\\t\\f"'),
        ("nul\x00", '"nul\\u0000"'),
        ("del\x7f", '"del\\u007F"'),
        ("esc\x1b[31m", '"esc\\u001B[31m"'),
        ("caf\u00e9 \U0001F680", '"caf\u00e9 \U0001F680"'),
        ("\u202eevil", '"\\u202Eevil"'),
        ("zero\u200bwidth", '"zero\\u200Bwidth"'),
        ("line\u2028sep", '"line\\u2028sep"'),
        ("nb\u00a0sp", '"nb\\u00A0sp"'),
        ("private\U000F0000", '"private\\U000F0000"'),
        (True, "true"),
        (False, "false"),
        (0, "0"),
        (-42, "-42"),
        (INT64_MAX, "9223372036854775807"),
        (INT64_MIN, "-9223372036854775808"),
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (1e16, "1e+16"),
        (2.5e-07, "2.5e-07"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (float("nan"), "nan"),
        ([], "[]"),
        ([1, "a", [True]], '[1, "a", [true]]'),
        ((1, 2), "[1, 2]"),
        ({}, "{}"),
        ({"a": 1, "b c": {"d.e": "f"}}, '{ a = 1, "b c" = { "d.e" = "f" } }'),
    ],
)
def test_literal(value, literal):
    assert toml_value(value) == literal


def test_float_one_stays_a_float():
    assert isinstance(load_value(toml_value(1.0)), float)


@pytest.mark.parametrize(
    ("key", "literal"),
    [
        ("name", "name"),
        ("tls-ca-file", "tls-ca-file"),
        ("FF_USE_FASTZIP", "FF_USE_FASTZIP"),
        ("1234", "1234"),
        ("", '""'),
        ("a.b", '"a.b"'),
        ("a b", '"a b"'),
        ("key\n", '"key\\n"'),
        ("caf\u00e9", '"caf\u00e9"'),
        ("\u212aelvin", '"\u212aelvin"'),
        ('x"]\n[evil', '"x\\"]\\n[evil"'),
    ],
)
def test_key_literal(key, literal):
    assert toml_key(key) == literal


def test_dotted_key_is_not_split():
    assert tomllib.loads("%s = 1" % toml_key("a.b")) == {"a.b": 1}


# --- injection -------------------------------------------------------------

TEMPLATE = "[[runners]]\n  name = {name}\n  executor = \"docker\"\n"


@pytest.mark.parametrize(
    "name",
    [
        'x"\n[[runners]]\nname = "evil',
        'x"\r\n[[runners]]\r\nname = "evil',
        "x'''\n[[runners]]\nname = '''evil",
        'x\\"\n[[runners]]\nname = "evil',
        'x\\',
        "x\x00\n[[runners]]",
        "x\u2028[[runners]]\u2029",
        "x\u0085[[runners]]",
        "\u202e\"]]srennur[[",
    ],
)
def test_name_cannot_inject_a_runner(name):
    document = tomllib.loads(TEMPLATE.format(name=toml_value(name)))
    assert document == {"runners": [{"name": name, "executor": "docker"}]}


def test_key_cannot_inject_a_table():
    key = 'x = 1\n[runners.docker]\nprivileged = true\n"y'
    document = tomllib.loads(
        "[runners.docker.sysctls]\n%s = %s\n"
        % (toml_key(key), toml_value("1"))
    )
    assert document == {"runners": {"docker": {"sysctls": {key: "1"}}}}


def test_rendered_output_is_a_single_line():
    value = {"a\nb": ["c\rd", {"e": "f\u2028g"}], "h": "\u0085"}
    assert "\n" not in toml_value(value)
    assert len(toml_value(value).splitlines()) == 1


# --- Ansible's own types and other containers ------------------------------

class _Mapping(Mapping):
    """A Mapping that is not a dict."""

    def __init__(self, data):
        self._data = dict(data)

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)


class _Sequence(Sequence):
    """A Sequence that is not a list."""

    def __init__(self, data):
        self._data = list(data)

    def __getitem__(self, index):
        return self._data[index]

    def __len__(self):
        return len(self._data)


def test_abstract_mapping_and_sequence():
    value = _Mapping({"a": _Sequence([1, "x"])})
    assert toml_value(value) == '{ a = [1, "x"] }'


def test_ansible_tagged_values():
    tags = pytest.importorskip("ansible._internal._datatag._tags")
    origin = tags.Origin(description="test")
    value = origin.tag({
        origin.tag("na me"): origin.tag([
            origin.tag('a"b'), origin.tag(3), origin.tag(1.0), True,
        ]),
    })
    # Tagged values are instances of tagged subclasses, not of the builtins themselves.
    assert isinstance(value, dict) and tags.Origin.is_tagged_on(value)
    literal = toml_value(value)
    assert literal == '{ "na me" = ["a\\"b", 3, 1.0, true] }'
    assert toml_key(origin.tag("a.b")) == '"a.b"'


def test_filter_module_lists_both_filters():
    filters = FilterModule().filters()
    assert filters["toml_value"] is toml_value
    assert filters["toml_key"] is toml_key


# --- errors ----------------------------------------------------------------

class _Unknown(object):
    """An object the filter knows nothing about."""


def _recursive_list():
    items = [1]
    items.append(items)
    return items


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("bad \udc80 byte", "lone surrogate U+DC80 (at index 4"),
        (["ok", {"k": "\ud800"}], "surrogate U+D800"),
        (None, "TOML has no null; omit the key"),
        ([1, None], "TOML has no null"),
        (2 ** 63, "out of range"),
        (-(2 ** 63) - 1, "out of range"),
        pytest.param(10 ** 5000, "integer of 16610 bits is out of range",
                     id="huge-int"),
        (_Unknown(), "_Unknown"),
        (b"bytes", "bytes"),
        ({1, 2}, "set"),
        ({1: "a"}, "keys must be strings"),
        ({"a": {None: "b"}}, "keys must be strings"),
        (_recursive_list(), "contains itself"),
    ],
)
def test_value_errors(value, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        toml_value(value)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (1, "keys must be strings, got int 1"),
        (None, "keys must be strings, got NoneType None"),
        ("\udfff", "surrogate U+DFFF"),
    ],
)
def test_key_errors(key, message):
    with pytest.raises(AnsibleFilterError, match=re.escape(message)):
        toml_key(key)


# --- through Ansible's templating ------------------------------------------

def test_filters_through_ansible(tmp_path, collections_path):
    """Run the filters inside a real ad-hoc ``debug`` task.

    The values come in as extra vars, so Ansible hands the filters its own
    tagged strings and lazy containers.
    """
    ansible = os.path.join(os.path.dirname(sys.executable), "ansible")
    if not os.path.exists(ansible):
        pytest.skip("no ansible executable next to %s" % sys.executable)
    extra_vars = {
        "name": 'x"\n[[runners]]\nname = "evil\\',
        "nested": {"a.b": [1, 2.5, True, "q\u202e"], "c": {"d": -3}},
        "key": "net.ipv4.ip_forward",
    }
    args = {
        "msg": "{{ [name | hardened.gitlab_runner.toml_value,"
               " nested | hardened.gitlab_runner.toml_value,"
               " key | hardened.gitlab_runner.toml_key] }}",
    }
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\n")
    env = dict(
        os.environ,
        ANSIBLE_COLLECTIONS_PATH=collections_path,
        ANSIBLE_CONFIG=str(config),
        ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        ANSIBLE_STDOUT_CALLBACK="json",
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "local"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "remote"),
        ANSIBLE_NOCOLOR="1",
    )
    result = subprocess.run(
        [ansible, "localhost", "-i", "localhost,", "-c", "local",
         "-m", "debug", "-a", json.dumps(args),
         "-e", json.dumps(extra_vars)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    output = json.loads(result.stdout)
    host = output["plays"][0]["tasks"][0]["hosts"]["localhost"]
    rendered_name, rendered_nested, rendered_key = host["msg"]
    assert rendered_name == toml_value(extra_vars["name"])
    assert rendered_nested == (
        '{ "a.b" = [1, 2.5, true, "q\\u202E"], c = { d = -3 } }'
    )
    assert rendered_key == '"net.ipv4.ip_forward"'
    document = tomllib.loads(
        "[[runners]]\nname = %s\nnested = %s\n%s = 1\n"
        % (rendered_name, rendered_nested, rendered_key)
    )
    assert document == {"runners": [{
        "name": extra_vars["name"],
        "nested": extra_vars["nested"],
        "net.ipv4.ip_forward": 1,
    }]}
