"""Jinja2 filters that render Python values as TOML 1.0 literals.

``toml_value`` turns a value into the text that may follow ``key =`` in a TOML
document (or appear inside an array or inline table); ``toml_key`` turns a
string into a TOML key.  Both are used by the ``config.toml`` template, which
must never emit broken or injectable TOML, so they:

* escape every character that could end a string or start a new line, and in
  addition every character that is not printable (control and format
  characters such as bidirectional overrides, zero-width characters, line and
  paragraph separators), so the rendered file looks exactly like what it
  means (what counts as printable follows the Unicode database of the
  controller's Python, so a character assigned in a newer Unicode version
  may be escaped on an older Python; either form parses to the same
  string);
* refuse values TOML cannot represent (``None``, lone surrogates, integers
  outside signed 64-bit, unknown types) with an ``AnsibleFilterError`` rather
  than rendering something approximate.

Ansible 2.19 hands filters its own subclasses of the builtin types (tagged
strings, lazy containers, ...), so values are classified with ``isinstance``
against builtins and ``collections.abc`` interfaces, never by exact type.

Documentation for ``ansible-doc`` lives in the sidecar files
``toml_value.yml`` and ``toml_key.yml`` next to this file.
"""

import math
import re
from collections.abc import Mapping, Sequence

from ansible.errors import AnsibleFilterError

_INT64_MIN = -(2 ** 63)
_INT64_MAX = 2 ** 63 - 1

# fullmatch() is used with it: a pattern ending in "$" would accept "key\n".
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")

_SHORT_ESCAPES = {
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
    '"': '\\"',
    "\\": "\\\\",
}


def _escape_char(char):
    """Return the TOML basic-string form of one (non-surrogate) character."""
    short = _SHORT_ESCAPES.get(char)
    if short is not None:
        return short
    # ASCII space is the one printable whitespace kept literal; everything
    # str.isprintable() rejects (Cc, Cf, Co, Cn, Zl, Zp, Zs but space) is
    # written as an escape so nothing invisible ends up in the file.
    if char == " " or char.isprintable():
        return char
    code = ord(char)
    if code <= 0xFFFF:
        return "\\u%04X" % code
    return "\\U%08X" % code


def _basic_string(text):
    """Return ``text`` as a double-quoted TOML basic string."""
    out = []
    for index, char in enumerate(text):
        if "\ud800" <= char <= "\udfff":
            raise AnsibleFilterError(
                "TOML strings cannot contain the lone surrogate U+%04X "
                "(at index %d of the string); a TOML string must be valid "
                "Unicode (was the text decoded with 'surrogateescape'?)"
                % (ord(char), index)
            )
        out.append(_escape_char(char))
    return '"' + "".join(out) + '"'


def _type_name(value):
    """Return a readable name for the type of ``value``."""
    cls = type(value)
    module = getattr(cls, "__module__", "")
    if module in ("builtins", ""):
        return cls.__qualname__
    return "%s.%s" % (module, cls.__qualname__)


def _describe(value):
    """Return a short ``repr`` of ``value`` for an error message."""
    if isinstance(value, int) and not isinstance(value, bool) \
            and value.bit_length() > 128:
        # Converting huge ints to text is slow and may be refused outright
        # (sys.set_int_max_str_digits).
        return "an integer of %d bits" % value.bit_length()
    try:
        text = repr(value)
    except Exception:  # pylint: disable=broad-except
        return "<%s>" % _type_name(value)
    return text if len(text) <= 60 else text[:57] + "..."


def toml_key(key):
    """Return ``key`` as a TOML key: bare if possible, else a quoted string.

    Dotted names are not split: ``a.b`` becomes ``"a.b"`` (one key), so a
    key can never open a nested table.  The empty string becomes ``""``.
    """
    if not isinstance(key, str):
        raise AnsibleFilterError(
            "toml_key: TOML keys must be strings, got %s %s"
            % (_type_name(key), _describe(key))
        )
    text = str.__str__(key)
    if _BARE_KEY.fullmatch(text):
        return text
    return _basic_string(text)


def _render(value, active):
    """Render ``value``; ``active`` holds ids of containers being rendered."""
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _basic_string(str.__str__(value))
    if isinstance(value, int):
        number = int(value)
        if not _INT64_MIN <= number <= _INT64_MAX:
            raise AnsibleFilterError(
                "toml_value: integer %s is out of range; TOML integers are "
                "signed 64-bit (%d to %d)"
                % (_describe(number), _INT64_MIN, _INT64_MAX)
            )
        return "%d" % number
    if isinstance(value, float):
        number = float(value)
        if math.isnan(number):
            return "nan"
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        # float.__repr__ is the shortest round-tripping form and always has
        # a '.' or an exponent ("1.0", "1e+16", "-0.0"), all valid TOML.
        return float.__repr__(number)
    if value is None:
        raise AnsibleFilterError(
            "toml_value: TOML has no null; omit the key instead of passing "
            "None"
        )
    if isinstance(value, Mapping):
        return _render_container(value, active, _render_table)
    if isinstance(value, Sequence) and not isinstance(
        value, (bytes, bytearray, memoryview)
    ):
        return _render_container(value, active, _render_array)
    raise AnsibleFilterError(
        "toml_value: cannot represent a value of type %s in TOML "
        "(supported: str, bool, int, float, list/tuple, dict)"
        % _type_name(value)
    )


def _render_container(value, active, render):
    """Render a list or mapping, refusing self-referencing structures."""
    marker = id(value)
    if marker in active:
        raise AnsibleFilterError(
            "toml_value: the value contains itself (a recursive %s); it "
            "cannot be written as TOML" % _type_name(value)
        )
    active.add(marker)
    try:
        return render(value, active)
    finally:
        active.discard(marker)


def _render_array(items, active):
    """Render a sequence as a TOML array."""
    return "[" + ", ".join(_render(item, active) for item in items) + "]"


def _render_table(mapping, active):
    """Render a mapping as a one-line TOML inline table."""
    parts = []
    for key, item in mapping.items():
        if not isinstance(key, str):
            raise AnsibleFilterError(
                "toml_value: TOML table keys must be strings, got %s key %s"
                % (_type_name(key), _describe(key))
            )
        parts.append("%s = %s" % (toml_key(key), _render(item, active)))
    if not parts:
        return "{}"
    return "{ " + ", ".join(parts) + " }"


def toml_value(value):
    """Return the TOML literal for ``value``.

    str -> basic string, bool -> ``true``/``false``, int -> decimal (signed
    64-bit only), float -> TOML float (``inf``, ``-inf`` and ``nan``
    included), list/tuple -> array, dict -> inline table.  Anything else,
    ``None`` included, raises ``AnsibleFilterError``.
    """
    return _render(value, set())


class FilterModule(object):
    """Ansible filter plugin: TOML rendering filters."""

    def filters(self):
        """Return the filters this plugin provides."""
        return {
            "toml_value": toml_value,
            "toml_key": toml_key,
        }
