"""Generate each role's README.md from its meta/argument_specs.yml, or check it.

    python scripts/role_docs.py                    # (re)write roles/*/README.md
    python scripts/role_docs.py --check            # exit 1 with a diff when a README.md differs
    python scripts/role_docs.py [--check] ROLES    # the same for another roles directory

Every directory in the roles directory is a role and must have an argument
spec (meta/argument_specs.yml, or an argument_specs key in meta/main.yml).
Each README lists the role's entry points (main first, then the others by
name), their descriptions and a Markdown table of their options, suboptions
included. The output depends on nothing but the argument specs and the
collection's name (galaxy.yml), so it is the same on every machine.

tests/release/test_docs.py runs --check, so a README that drifts from its
argument spec fails the tests.
"""

import argparse
import difflib
import json
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))

HEADER = ("<!-- Generated from meta/argument_specs.yml by scripts/role_docs.py; do not edit by hand, "
          "edit the argument spec and run python scripts/role_docs.py. -->")

# Ansible's documentation markup (the subset ansible-doc knows), in the order
# they are tried at one position: RV before V, so "RV(" is not read as "V(".
_MARKUP = re.compile(
    r"\b(?:"
    r"(?P<link>L)\((?P<link_text>[^)]+?), *(?P<link_url>[^)]+)\)"
    r"|(?P<ref>R)\((?P<ref_text>[^)]+?), *(?P<ref_target>[^)]+)\)"
    r"|(?P<sem>RV|O|V|E)\((?P<sem_text>(?:[^\\)]|\\.)+)\)"
    r"|(?P<plain>C|M|I|B|U)\((?P<plain_text>[^)]+)\)"
    r"|(?P<plugin>P)\((?P<plugin_name>[^#)]+)#(?P<plugin_type>[a-z]+)\)"
    r"|(?P<ruler>HORIZONTALLINE)"
    r")"
)
_UNESCAPE = re.compile(r"\\(.)")
_FQCN_PREFIX = re.compile(r"^[^.#]+\.[^.#]+\.[^#]+#[a-z]+:")


class SpecError(Exception):
    """A role's argument spec is missing or malformed."""


def _escape_text(text):
    """Escape plain text for a Markdown table cell."""
    text = text.replace("\\", "\\\\")
    for char in "`*_[]|":
        text = text.replace(char, "\\" + char)
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _code(text):
    """``text`` as a Markdown code span that is safe inside a table cell."""
    text = str(text).replace("|", "\\|")
    fence = "`"
    while fence in text:
        fence += "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return "%s%s%s%s%s" % (fence, pad, text, pad, fence)


def markup(text):
    """Ansible documentation markup (C(), O(), V(), ...) as Markdown, on one line."""
    text = " ".join(str(text).split())
    out = []
    position = 0
    for match in _MARKUP.finditer(text):
        out.append(_escape_text(text[position:match.start()]))
        position = match.end()
        if match.group("link"):
            out.append("[%s](%s)" % (_escape_text(match.group("link_text")), match.group("link_url")))
        elif match.group("ref"):
            out.append(_escape_text(match.group("ref_text")))
        elif match.group("sem"):
            value = _UNESCAPE.sub(r"\1", match.group("sem_text"))
            if match.group("sem") in ("O", "RV"):
                value = _FQCN_PREFIX.sub("", value)
            out.append(_code(value))
        elif match.group("plain"):
            kind, value = match.group("plain"), match.group("plain_text")
            if kind == "I":
                out.append("*%s*" % _escape_text(value))
            elif kind == "B":
                out.append("**%s**" % _escape_text(value))
            elif kind == "U":
                out.append("<%s>" % value)
            else:
                out.append(_code(value))
        elif match.group("plugin"):
            out.append(_code(match.group("plugin_name")))
    out.append(_escape_text(text[position:]))
    return "".join(out).strip()


def _paragraphs(value):
    """A description (string or list of strings) as a list of Markdown paragraphs."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    return [markup(item) for item in value if str(item).strip()]


def _literal(value):
    """A default or choice value as a Markdown code span."""
    if isinstance(value, str):
        return _code(value) if value else _code('""')
    if isinstance(value, bool):
        return _code("true" if value else "false")
    if value is None:
        return _code("null")
    if isinstance(value, (int, float)):
        return _code(repr(value))
    return _code(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def _type(option):
    kind = option.get("type", "str")
    if option.get("elements"):
        return "%s / elements=%s" % (kind, option["elements"])
    return str(kind)


def _rows(options, prefix="", depth=0):
    """Table rows for ``options`` and, after each, its suboptions (depth first, in spec order).

    A suboption's name is its full path (``parent[].name`` below a list,
    ``parent.name`` below a dictionary), indented by one em space per level.
    """
    rows = []
    for name, option in (options or {}).items():
        option = option or {}
        if not isinstance(option, dict):
            raise SpecError("option %s%s is not a mapping" % (prefix, name))
        path = prefix + str(name)
        cell = "&emsp;" * depth + _code(path)
        if option.get("no_log"):
            cell += " **(no_log)**"
        choices = option.get("choices")
        rows.append("| %s | %s | %s | %s | %s | %s |" % (
            cell,
            _type(option),
            "yes" if option.get("required") else "no",
            _literal(option["default"]) if "default" in option else "",
            ", ".join(_literal(choice) for choice in choices) if choices else "",
            "<br>".join(_paragraphs(option.get("description"))),
        ))
        if option.get("options"):
            separator = "[]." if option.get("type") == "list" else "."
            rows.extend(_rows(option["options"], path + separator, depth + 1))
    return rows


def _entry_point(name, entry):
    if not isinstance(entry, dict):
        raise SpecError("entry point %s is not a mapping" % name)
    lines = ["## Entry point `%s`" % name, ""]
    if name != "main":
        lines += ["Run it with `tasks_from: %s`." % name, ""]
    short = entry.get("short_description")
    if short:
        lines += [markup(short), ""]
    for paragraph in _paragraphs(entry.get("description")):
        lines += ["- " + paragraph]
    if entry.get("description"):
        lines.append("")
    options = entry.get("options") or {}
    lines += ["### Options", ""]
    if not options:
        return lines + ["This entry point takes no options.", ""]
    if _has_no_log(options):
        lines += ["Options marked **(no_log)** hold secrets: their argument spec sets `no_log: true`.", ""]
    lines += [
        "| Option | Type | Required | Default | Choices | Description |",
        "|---|---|---|---|---|---|",
    ]
    return lines + _rows(options) + [""]


def _has_no_log(options):
    return any(isinstance(option, dict) and (option.get("no_log") or _has_no_log(option.get("options") or {}))
               for option in options.values())


def load_spec(role_dir):
    """The role's argument_specs mapping (entry point name -> spec)."""
    meta = os.path.join(role_dir, "meta")
    for name in ("argument_specs.yml", "argument_specs.yaml", "main.yml", "main.yaml"):
        path = os.path.join(meta, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
        specs = data.get("argument_specs") if isinstance(data, dict) else None
        if specs is None:
            continue
        if not isinstance(specs, dict) or not specs:
            raise SpecError("%s: argument_specs must be a non-empty mapping of entry points" % path)
        return specs
    raise SpecError("%s has no argument spec (meta/argument_specs.yml)" % role_dir)


def render(role, specs, collection):
    """The README.md text for ``role`` of ``collection`` from its argument ``specs``."""
    title = "%s.%s" % (collection, role) if collection else role
    lines = [HEADER, "", "# %s" % title, ""]
    if collection:
        lines += ["Role `%s` of the `%s` collection." % (role, collection), ""]
    names = sorted(specs, key=lambda entry: (entry != "main", entry))
    if len(names) > 1:
        lines += ["Entry points: %s." % ", ".join("`%s`" % name for name in names), ""]
    for name in names:
        lines += _entry_point(name, specs[name])
    return "\n".join(lines).rstrip("\n") + "\n"


def collection_name(roles_dir):
    """namespace.name from the galaxy.yml next to ``roles_dir``, else the checkout's."""
    for base in (os.path.dirname(os.path.abspath(roles_dir)), ROOT):
        path = os.path.join(base, "galaxy.yml")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                galaxy = yaml.safe_load(handle) or {}
            return "%s.%s" % (galaxy["namespace"], galaxy["name"])
    return ""


def generate(roles_dir):
    """{README path: wanted text} for every role in ``roles_dir``."""
    collection = collection_name(roles_dir)
    wanted = {}
    for role in sorted(os.listdir(roles_dir)):
        role_dir = os.path.join(roles_dir, role)
        if role.startswith(".") or not os.path.isdir(role_dir):
            continue
        wanted[os.path.join(role_dir, "README.md")] = render(role, load_spec(role_dir), collection)
    return wanted


def _read(path):
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _shown(path):
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


def main(argv=None):
    parser = argparse.ArgumentParser(description="Generate roles/*/README.md from meta/argument_specs.yml.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 with a diff when a README.md differs from what would be generated")
    parser.add_argument("roles_dir", nargs="?", default=os.path.join(ROOT, "roles"),
                        help="the roles directory (default: the checkout's roles/)")
    args = parser.parse_args(argv)

    try:
        wanted = generate(args.roles_dir)
    except (SpecError, OSError, yaml.YAMLError) as exc:
        print("role_docs: %s" % exc, file=sys.stderr)
        return 2

    stale = []
    for path, text in wanted.items():
        current = _read(path)
        if current == text:
            continue
        stale.append(path)
        if args.check:
            name = _shown(path)
            sys.stdout.writelines(difflib.unified_diff(
                [] if current is None else current.splitlines(True), text.splitlines(True),
                fromfile="/dev/null" if current is None else name, tofile="%s (generated)" % name))
        else:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            print("wrote %s" % _shown(path))

    if args.check and stale:
        print("role_docs: %d README.md file(s) differ from their argument spec: %s. "
              "Run python scripts/role_docs.py to regenerate them."
              % (len(stale), ", ".join(_shown(path) for path in stale)))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
