"""Generate the config.toml key lists of GitLab Runner release lines from the runner's source.

GitLab Runner decodes config.toml into Go structs (BurntSushi/toml) and
silently ignores every key that matches no struct field; feature flags it does
not know are ignored too. This script reads, at a given tag of the runner's
source, the ``toml:"..."`` struct tags of the structs ``common.Config`` is
made of (``common/config.go``, ``common/labels.go``,
``cache/cacheconfig/cacheconfig.go``, ``helpers/docker/credentials.go``,
``referees/referees.go``, ``referees/metrics.go``,
``common/config/runner/monitoring*.go`` and any other package of the
repository a field's type comes from) and the feature flag list in
``helpers/featureflags/flags.go``, and writes one data module per release line
(major.minor) to ``plugins/module_utils/runner_keys/v<major>_<minor>.py``,
recording the tag and commit it came from. ``runner_keys/__init__.py``, the
index the collection imports, is rewritten to list every data module there.
``plugins/module_utils/runner_config_schema.py`` holds the code that uses them.

Usage (the source is https://gitlab.com/gitlab-org/gitlab-runner, or its GitHub
mirror https://github.com/gitlabhq/gitlab-runner; a bare clone is enough):

    git clone --bare https://gitlab.com/gitlab-org/gitlab-runner.git /tmp/gitlab-runner.git

    # one list per tag (each tag must be of a different release line)
    python scripts/runner_keys.py --git-dir /tmp/gitlab-runner.git v18.11.4 v19.3.0
    # one list per minor release line of majors 18 and 19, each from the
    # line's newest patch tag (release candidates are left out)
    python scripts/runner_keys.py --git-dir /tmp/gitlab-runner.git --latest-patch 18 19
    # a checked-out work tree (its tag is read with git describe unless given)
    python scripts/runner_keys.py --source ~/src/gitlab-runner [--tag v19.3.0]
    # regenerate every committed list from the tag it records and compare
    # (exit 1 with a diff when one differs); writes nothing
    python scripts/runner_keys.py --git-dir /tmp/gitlab-runner.git --check

CI does not run it (it cannot reach the source); the committed lists are
plain data, and tests/unit checks their shape.

How the struct tags become key lists
------------------------------------
A field's key is its ``toml`` tag name, else the field name; ``toml:"-"``
and unexported fields are skipped; an embedded struct without a tag name
contributes its fields (as BurntSushi/toml does). A field whose type is a
struct is a sub-table (a section of its own), a slice of structs an array of
tables (``ARRAY_SECTIONS``), a map, ``any`` or a struct with its own
``UnmarshalTOML``/``UnmarshalText`` a free-form table (``OPEN_SECTIONS``, not
checked); anything else is a value. Two rules of the collection, not of
GitLab Runner: only the top-level keys of ``[runners.kubernetes]`` are
listed (its sub-tables are open: they mirror Kubernetes objects), and
``[runners.feature_flags]`` is checked against the feature flags instead.
Feature flags are the ``Name`` of every entry of ``flags`` in
``helpers/featureflags/flags.go`` (the documented list), without the
internal ``FF_TEST_FEATURE``. Types from outside the repository must be
known values (``EXTERNAL_VALUES``); any other stops the script, so a new
kind of field is looked at by a person instead of being guessed.
"""

import argparse
import difflib
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
OUT_DIR = os.path.join(ROOT, "plugins", "module_utils", "runner_keys")
PACKAGE = "ansible_collections.hardened.gitlab_runner.plugins.module_utils.runner_keys"
SOURCE_URL = "https://gitlab.com/gitlab-org/gitlab-runner"

ROOT_PACKAGE, ROOT_TYPE = "common", "Config"
FLAGS_FILE = "helpers/featureflags/flags.go"
INTERNAL_FLAGS = ("FF_TEST_FEATURE",)
# Sections whose sub-tables are not walked (listed as open instead).
OPEN_BELOW = (("runners", "kubernetes"),)
FEATURE_FLAGS_SECTION = ("runners", "feature_flags")
# Types from outside the repository, known to be TOML values (not tables).
EXTERNAL_VALUES = {
    ("time", "Duration"), ("time", "Time"),
    ("k8s.io/api/core/v1", "Capability"), ("k8s.io/api/core/v1", "ProcMountType"),
    ("k8s.io/api/core/v1", "PullPolicy"),
}
GO_BUILTINS = {
    "bool", "string", "byte", "rune", "error", "uintptr",
    "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "complex64", "complex128",
}
GOOS = ("aix", "android", "darwin", "dragonfly", "freebsd", "illumos", "ios", "js", "netbsd", "openbsd",
        "plan9", "solaris", "wasip1", "windows", "linux")
BUILD_TAGS = {"linux", "unix", "amd64", "gc", "cgo"}


class SourceError(Exception):
    """The source cannot be read or holds something this script does not understand."""


# --- reading the source ---------------------------------------------------------


class GitTree(object):
    """Files of one tag of a git repository (a bare clone is enough)."""

    def __init__(self, git_dir, tag):
        self.git_dir, self.tag = git_dir, tag
        self.commit = self._git("rev-parse", "%s^{commit}" % tag).strip()

    def _git(self, *args):
        proc = subprocess.run(["git", "--git-dir", self.git_dir] + list(args), capture_output=True, text=True,
                              check=False)
        if proc.returncode != 0:
            raise SourceError("git %s: %s" % (" ".join(args), proc.stderr.strip()))
        return proc.stdout

    def list_dir(self, path):
        out = self._git("ls-tree", "--name-only", "%s:%s" % (self.commit, path)) if self.exists(path) else ""
        return sorted(line for line in out.splitlines() if line)

    def exists(self, path):
        proc = subprocess.run(["git", "--git-dir", self.git_dir, "cat-file", "-e", "%s:%s" % (self.commit, path)],
                              capture_output=True, check=False)
        return proc.returncode == 0

    def read(self, path):
        return self._git("show", "%s:%s" % (self.commit, path))


class WorkTree(object):
    """Files of a checked-out work tree."""

    def __init__(self, path, tag=None):
        self.path = path
        if tag is None:
            tag = self._git("describe", "--tags", "--exact-match").strip()
        self.tag = tag
        self.commit = self._git("rev-parse", "HEAD").strip()

    def _git(self, *args):
        proc = subprocess.run(["git", "-C", self.path] + list(args), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SourceError("git %s in %s: %s (give --tag)" % (" ".join(args), self.path, proc.stderr.strip()))
        return proc.stdout

    def list_dir(self, path):
        full = os.path.join(self.path, path)
        return sorted(os.listdir(full)) if os.path.isdir(full) else []

    def exists(self, path):
        return os.path.exists(os.path.join(self.path, path))

    def read(self, path):
        with open(os.path.join(self.path, path), encoding="utf-8") as handle:
            return handle.read()


# --- a small Go tokenizer and declaration parser -------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r]+)
  | (?P<nl>\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<raw>`[^`]*`)
  | (?P<str>"(?:\\.|[^"\\\n])*")
  | (?P<rune>'(?:\\.|[^'\\\n])+')
  | (?P<num>\.?[0-9](?:[eEpP][+-]|[0-9A-Za-z_.])*)
  | (?P<ident>[^\W\d]\w*)
  | (?P<op><<=|>>=|&\^=|\.\.\.|&&|\|\||<-|\+\+|--|==|!=|<=|>=|:=|\+=|-=|\*=|/=|%=|&=|\|=|\^=|<<|>>|&\^|~
         |[-+*/%&|^<>=!()\[\]{},;.:])
""", re.S | re.X)
_SEMI_AFTER = {"ident", "num", "str", "raw", "rune"}
_SEMI_AFTER_WORDS = {"break", "continue", "fallthrough", "return"}
_SEMI_AFTER_OPS = {"++", "--", ")", "]", "}"}


def tokenize(text, where):
    """Go tokens as (kind, text), with Go's automatic semicolons inserted."""
    tokens = []
    pos = 0

    def needs_semicolon():
        if not tokens:
            return False
        kind, value = tokens[-1]
        if kind == "ident":
            return value not in {"func", "struct", "interface", "map", "chan", "package", "import", "type", "var",
                                 "const", "go", "defer", "if", "else", "for", "switch", "select", "case",
                                 "default", "range"} or value in _SEMI_AFTER_WORDS
        return kind in _SEMI_AFTER or (kind == "op" and value in _SEMI_AFTER_OPS)

    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            line = text.count("\n", 0, pos) + 1
            raise SourceError("%s:%d: cannot read %r" % (where, line, text[pos:pos + 20]))
        kind = match.lastgroup
        value = match.group(kind)
        pos = match.end()
        if kind == "ws":
            continue
        if kind == "nl" or (kind == "comment" and "\n" in value):
            if needs_semicolon():
                tokens.append(("op", ";"))
            continue
        if kind == "comment":
            continue
        tokens.append((kind, value))
    if needs_semicolon():
        tokens.append(("op", ";"))
    return tokens


class Parser(object):
    """Top-level declarations of one Go file: imports, types, methods, string constants, ``var flags``."""

    _TYPE_START = {"*", "[", "(", "<-"}
    _TYPE_WORDS = {"map", "chan", "func", "struct", "interface"}

    def __init__(self, text, where):
        self.where = where
        self.tokens = tokenize(text, where)
        self.pos = 0
        self.package = None
        self.imports = []       # (alias or None, path)
        self.types = {}         # name -> type node
        self.methods = []       # (receiver type name, method name)
        self.constants = {}     # name -> string value
        self.flag_names = None  # names in `var flags = []FeatureFlag{...}`
        self._parse()

    # token helpers
    def peek(self, offset=0):
        index = self.pos + offset
        return self.tokens[index] if index < len(self.tokens) else ("eof", "")

    def next(self):
        token = self.peek()
        self.pos += 1
        return token

    def accept(self, value):
        if self.peek()[1] == value and self.peek()[0] in ("op", "ident"):
            self.pos += 1
            return True
        return False

    def expect(self, value):
        kind, text = self.next()
        if text != value or kind not in ("op", "ident"):
            raise SourceError("%s: expected %r, found %r (token %d)" % (self.where, value, text, self.pos))

    def ident(self):
        kind, text = self.next()
        if kind != "ident":
            raise SourceError("%s: expected a name, found %r (token %d)" % (self.where, text, self.pos))
        return text

    def skip_balanced(self):
        """Skip one bracketed group starting at the current ( [ or {."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        stack = []
        while True:
            kind, text = self.next()
            if kind == "eof":
                raise SourceError("%s: unbalanced brackets" % self.where)
            if kind == "op" and text in pairs:
                stack.append(pairs[text])
            elif kind == "op" and text in (")", "]", "}"):
                if not stack or stack.pop() != text:
                    raise SourceError("%s: unbalanced %r (token %d)" % (self.where, text, self.pos))
                if not stack:
                    return

    def skip_to_semicolon(self):
        depth = 0
        while True:
            kind, text = self.peek()
            if kind == "eof":
                return
            if kind == "op" and text in ("(", "[", "{"):
                self.skip_balanced()
                continue
            if kind == "op" and text in (")", "}") and depth == 0:
                return
            self.pos += 1
            if kind == "op" and text == ";":
                return

    # declarations
    def _parse(self):
        self.accept(";")
        self.expect("package")
        self.package = self.ident()
        while self.peek()[0] != "eof":
            kind, text = self.peek()
            if kind == "op" and text == ";":
                self.pos += 1
            elif text == "import":
                self.pos += 1
                self._group(self._import_spec)
            elif text == "type":
                self.pos += 1
                self._group(self._type_spec)
            elif text in ("const", "var"):
                self.pos += 1
                self._group(self._value_spec)
            elif text == "func":
                self._func()
            else:
                raise SourceError("%s: unexpected %r at the top level (token %d)" % (self.where, text, self.pos))

    def _group(self, spec):
        if self.accept("("):
            while not self.accept(")"):
                if self.accept(";"):
                    continue
                spec()
        else:
            spec()

    def _import_spec(self):
        alias = None
        if self.peek()[0] == "ident" or self.peek()[1] == ".":
            alias = self.next()[1]
        kind, text = self.next()
        if kind not in ("str", "raw"):
            raise SourceError("%s: bad import %r" % (self.where, text))
        self.imports.append((alias, text[1:-1]))
        self.accept(";")

    def _type_spec(self):
        name = self.ident()
        if self.peek()[1] == "[" and self.peek(1)[0] == "ident" and self.peek(2)[1] not in ("]",):
            self.skip_balanced()  # type parameters
        alias = self.accept("=")
        node = self.type_expr()
        self.types[name] = ("alias", node) if alias else node
        self.accept(";")

    def _value_spec(self):
        names = [self.ident()]
        while self.accept(","):
            names.append(self.ident())
        if self.peek()[1] not in ("=", ";", ")"):
            self.type_expr()
        if not self.accept("="):
            self.accept(";")
            return
        start = self.pos
        self.skip_to_semicolon()
        value = self.tokens[start:self.pos]
        if value and value[-1] == ("op", ";"):
            value = value[:-1]
        if len(names) == 1 and len(value) == 1 and value[0][0] == "str":
            self.constants[names[0]] = _go_string(value[0][1])
        if names == ["flags"]:
            self.flag_names = [value[i + 2] for i in range(len(value) - 2)
                               if value[i] == ("ident", "Name") and value[i + 1] == ("op", ":")]

    def _func(self):
        self.expect("func")
        receiver = None
        if self.peek()[1] == "(":
            start = self.pos
            self.skip_balanced()
            names = [text for kind, text in self.tokens[start:self.pos] if kind == "ident"]
            receiver = names[-1] if names else None
            if len(names) >= 2 and self.tokens[self.pos - 2][1] == "]":  # generic receiver T[...]
                receiver = None
        name = self.ident()
        if self.peek()[1] == "[":
            self.skip_balanced()
        self.skip_balanced()  # parameters
        if self.peek()[1] == "(":
            self.skip_balanced()
        elif self.peek()[1] not in ("{", ";") and self.peek()[0] != "eof":
            self.type_expr()
        if self.peek()[1] == "{":
            self.skip_balanced()
        self.accept(";")
        if receiver is not None:
            self.methods.append((receiver, name))

    # types
    def type_expr(self):
        kind, text = self.peek()
        if text == "*" and kind == "op":
            self.pos += 1
            return ("ptr", self.type_expr())
        if text == "(" and kind == "op":
            self.pos += 1
            node = self.type_expr()
            self.expect(")")
            return node
        if text == "[" and kind == "op":
            self.pos += 1
            if self.accept("]"):
                return ("slice", self.type_expr())
            self.pos -= 1
            self.skip_balanced()
            return ("array", self.type_expr())
        if text == "<-":
            self.pos += 1
            self.expect("chan")
            self.type_expr()
            return ("chan",)
        if kind != "ident":
            raise SourceError("%s: expected a type, found %r (token %d)" % (self.where, text, self.pos))
        if text == "map":
            self.pos += 1
            self.expect("[")
            key = self.type_expr()
            self.expect("]")
            return ("map", key, self.type_expr())
        if text == "chan":
            self.pos += 1
            self.accept("<-")
            self.type_expr()
            return ("chan",)
        if text == "func":
            self.pos += 1
            self.skip_balanced()
            if self.peek()[1] == "(":
                self.skip_balanced()
            elif self.peek()[0] == "ident" and self.peek()[1] in self._TYPE_WORDS | {"error"} \
                    or self.peek()[1] in ("*", "["):
                self.type_expr()
            elif self.peek()[0] == "ident" and self.peek()[1] not in ("struct",):
                self.type_expr()
            return ("func",)
        if text == "interface":
            self.pos += 1
            self.skip_balanced()
            return ("interface",)
        if text == "struct":
            self.pos += 1
            return ("struct", self._fields())
        self.pos += 1
        package = None
        if self.peek()[1] == "." and self.peek(1)[0] == "ident":
            self.pos += 1
            package, text = text, self.ident()
        if self.peek()[1] == "[" and self.peek(1)[1] != "]":
            self.skip_balanced()  # type arguments
        return ("name", package, text)

    def _fields(self):
        self.expect("{")
        fields = []  # (names or None when embedded, type node, tag text)
        while not self.accept("}"):
            if self.accept(";"):
                continue
            kind, text = self.peek()
            after = self.peek(1)
            if text == "*" or (kind == "ident" and (after[1] in (".", ";", "}") or after[0] in ("str", "raw"))):
                names, node = None, self.type_expr()
            else:
                names = [self.ident()]
                while self.accept(","):
                    names.append(self.ident())
                node = self.type_expr()
            tag = ""
            if self.peek()[0] in ("str", "raw"):
                raw = self.next()[1]
                tag = raw[1:-1] if raw.startswith("`") else _go_string(raw)
            fields.append((names, node, tag))
        return fields


def _go_string(literal):
    """The value of an interpreted Go string literal (the escapes config code uses)."""
    return re.sub(r'\\(["\\nt])', lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), literal[1:-1])


def toml_tag(tag):
    """(name, present) of a struct tag's toml key, like reflect.StructTag.Lookup."""
    for match in re.finditer(r'(\w+):"((?:\\.|[^"\\])*)"', tag):
        if match.group(1) == "toml":
            return match.group(2).split(",")[0], True
    return "", False


def _build_ok(text):
    """Whether a file's //go:build line (if any) holds for linux/amd64."""
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("//go:build "):
            expr = line[len("//go:build "):]
            expr = re.sub(r"[A-Za-z0-9_.]+", lambda m: " True " if m.group(0) in BUILD_TAGS
                          or m.group(0).startswith("go1.") else " False ", expr)
            expr = expr.replace("&&", " and ").replace("||", " or ").replace("!", " not ")
            return bool(eval(expr, {"__builtins__": {}}))  # noqa: S307 - only True/False/and/or/not/parens
        if line.startswith("package "):
            break
    return True


# --- packages and type resolution -----------------------------------------------------


class Source(object):
    """The Go packages of one tag, loaded on demand."""

    def __init__(self, tree):
        self.tree = tree
        self.module = None
        for line in tree.read("go.mod").splitlines():
            if line.startswith("module "):
                self.module = line.split()[1]
        if not self.module:
            raise SourceError("go.mod names no module")
        self.packages = {}
        self.files_used = set()

    def package(self, directory):
        if directory not in self.packages:
            files = [name for name in self.tree.list_dir(directory)
                     if name.endswith(".go") and not name.endswith("_test.go")
                     and not any(name.endswith("_%s.go" % goos) for goos in GOOS if goos != "linux")]
            if not files:
                raise SourceError("no Go files in %s" % directory)
            package = {"name": None, "types": {}, "methods": set()}
            for name in files:
                path = "%s/%s" % (directory, name)
                text = self.tree.read(path)
                if not _build_ok(text):
                    continue
                parsed = Parser(text, path)
                package["name"] = package["name"] or parsed.package
                context = {"dir": directory, "file": path, "imports": self._imports(parsed.imports)}
                for type_name, node in parsed.types.items():
                    if type_name in package["types"]:
                        raise SourceError("%s: type %s is declared twice" % (path, type_name))
                    package["types"][type_name] = (node, context)
                for receiver, method in parsed.methods:
                    package["methods"].add((receiver, method))
            self.packages[directory] = package
        return self.packages[directory]

    def _imports(self, imports):
        out = {}
        for alias, path in imports:
            if alias in ("_", "."):
                continue
            if alias is None:
                if path == self.module or path.startswith(self.module + "/"):
                    alias = self.package(self._dir(path))["name"]
                else:
                    parts = path.split("/")
                    alias = parts[-2] if re.fullmatch(r"v[0-9]+", parts[-1]) and len(parts) > 1 else parts[-1]
                    alias = re.sub(r"\.v[0-9]+$", "", alias).replace("-", "_")
            out[alias] = path
        return out

    def _dir(self, path):
        return path[len(self.module):].lstrip("/") or "."

    def lookup(self, node, context):
        """(type node, its context, name) of a named type, or ("external", path, name)."""
        dummy, package, name = node
        if package is None:
            directory = context["dir"]
        else:
            path = context["imports"].get(package)
            if path is None:
                raise SourceError("%s: unknown package %s" % (context["file"], package))
            if not (path == self.module or path.startswith(self.module + "/")):
                return ("external", path, name)
            directory = self._dir(path)
        types = self.package(directory)["types"]
        if name not in types:
            raise SourceError("%s: type %s.%s not found in %s" % (context["file"], package, name, directory))
        decl, decl_context = types[name]
        self.files_used.add(decl_context["file"])
        return decl, decl_context, (directory, name)

    def custom_decoder(self, directory, name):
        methods = self.package(directory)["methods"]
        return (name, "UnmarshalTOML") in methods or (name, "UnmarshalText") in methods

    def classify(self, node, context):
        """("value"|"open", None) or ("table"|"array", (struct node, context))."""
        kind = node[0]
        if kind == "ptr":
            return self.classify(node[1], context)
        if kind in ("slice", "array"):
            inner, target = self.classify(node[1], context)
            if inner == "table":
                return "array", target
            return ("open" if inner in ("open", "array") else "value"), None
        if kind == "map" or kind == "interface":
            return "open", None
        if kind == "struct":
            return "table", (node, context)
        if kind in ("func", "chan"):
            return "value", None
        if kind == "alias":
            return self.classify(node[1], context)
        dummy, package, name = node
        if package is None and name in GO_BUILTINS:
            return "value", None
        if package is None and name == "any":
            return "open", None
        found = self.lookup(node, context)
        if found[0] == "external":
            if (found[1], found[2]) in EXTERNAL_VALUES:
                return "value", None
            raise SourceError("%s: %s.%s (%s) is not in EXTERNAL_VALUES: is it a TOML value or a table?"
                              % (context["file"], package, name, found[1]))
        decl, decl_context, (directory, type_name) = found
        if self.custom_decoder(directory, type_name):
            underlying = decl[1] if decl[0] == "alias" else decl
            return ("open" if self.classify(underlying, decl_context)[0] in ("table", "open") else "value"), None
        return self.classify(decl, decl_context)

    def struct_keys(self, struct, context):
        """[(key, type node, context)] of a struct, embedded structs flattened (outer names win)."""
        keys, embedded = {}, []
        for names, node, tag in struct[1]:
            name, has_tag = toml_tag(tag)
            if name == "-":
                continue
            if names is None:
                base = node[1] if node[0] == "ptr" else node
                if name:
                    keys.setdefault(name, (node, context))
                    continue
                kind, target = self.classify(base, context)
                if kind != "table":
                    raise SourceError("%s: embedded %r is not a struct" % (context["file"], base))
                embedded.append(target)
                continue
            for field in names:
                if not field[0].isupper():
                    continue
                keys.setdefault(name if has_tag and name else field, (node, context))
        for target in embedded:
            for key, node, inner in self.struct_keys(*target):
                keys.setdefault(key, (node, inner))
        return [(key, node, ctx) for key, (node, ctx) in keys.items()]


def key_lists(tree):
    """The data of one tag: {"sections", "open", "arrays", "flags", "files"}."""
    source = Source(tree)
    root = source.package(ROOT_PACKAGE)["types"].get(ROOT_TYPE)
    if root is None:
        raise SourceError("%s.%s not found" % (ROOT_PACKAGE, ROOT_TYPE))
    source.files_used.add(root[1]["file"])
    sections, open_sections, arrays = {}, set(), set()

    def walk(path, struct, context):
        if len(path) > 12:
            raise SourceError("sections nest too deep at %s" % ".".join(path))
        keys = source.struct_keys(struct, context)
        sections[path] = sorted(key for key, dummy, dummy2 in keys)
        for key, node, inner in keys:
            child = path + (key,)
            kind, target = source.classify(node, inner)
            if child == FEATURE_FLAGS_SECTION:
                if kind != "open":
                    raise SourceError("feature_flags is no longer a map")
                continue
            if path in OPEN_BELOW:
                if kind != "value":
                    open_sections.add(child)
                continue
            if kind == "table":
                walk(child, *target)
            elif kind == "array":
                arrays.add(child)
                walk(child, *target)
            elif kind == "open":
                open_sections.add(child)

    node, context = root
    if node[0] != "struct":
        raise SourceError("%s.%s is not a struct" % (ROOT_PACKAGE, ROOT_TYPE))
    walk((), node, context)

    flags_text = tree.read(FLAGS_FILE)
    parsed = Parser(flags_text, FLAGS_FILE)
    if not parsed.flag_names:
        raise SourceError("%s: no `var flags = []FeatureFlag{...}` with Name fields" % FLAGS_FILE)
    constants = dict(parsed.constants)
    for name in tree.list_dir(os.path.dirname(FLAGS_FILE)):
        path = "%s/%s" % (os.path.dirname(FLAGS_FILE), name)
        if name.endswith(".go") and not name.endswith("_test.go") and path != FLAGS_FILE:
            constants.update(Parser(tree.read(path), path).constants)
    flags = set()
    for kind, text in parsed.flag_names:
        value = _go_string(text) if kind == "str" else constants.get(text)
        if value is None:
            raise SourceError("%s: feature flag name %s is not a string constant" % (FLAGS_FILE, text))
        if value not in INTERNAL_FLAGS:
            flags.add(value)
    return {
        "sections": sections,
        "open": sorted(open_sections),
        "arrays": sorted(arrays),
        "flags": sorted(flags),
        "files": sorted(source.files_used | {FLAGS_FILE}),
    }


# --- writing the data modules ---------------------------------------------------------

_RELEASE = re.compile(r"^v([0-9]+)\.([0-9]+)\.([0-9]+)$")


def release_line(tag):
    match = _RELEASE.match(tag)
    if not match:
        raise SourceError("%s is not a release tag (vMAJOR.MINOR.PATCH)" % tag)
    return int(match.group(1)), int(match.group(2))


def _literal(value):
    """``value`` (a string, or a tuple of strings) as a Python literal in double quotes."""
    if isinstance(value, tuple):
        inner = ", ".join(_literal(item) for item in value)
        return "(%s%s)" % (inner, "," if len(value) == 1 else "")
    if not re.fullmatch(r"[A-Za-z0-9_./-]*", value):
        raise SourceError("unexpected characters in %r" % value)
    return '"%s"' % value


def _wrap(items, indent, width=100, literal=_literal):
    """``items`` as literals, comma-separated, wrapped at ``width``."""
    lines, line = [], indent
    for item in items:
        text = literal(item) + ","
        if line.strip() and len(line) + 1 + len(text) > width:
            lines.append(line.rstrip())
            line = indent
        line += (" " if line.strip() else "") + text
    if line.strip():
        lines.append(line.rstrip())
    return lines


def render(tag, commit, data):
    major, minor = release_line(tag)
    lines = [
        "# -*- coding: utf-8 -*-",
        "# Generated by scripts/runner_keys.py from GitLab Runner %s: do not edit by hand." % tag,
        '"""config.toml keys and feature flags of GitLab Runner %d.%d (tag %s).' % (major, minor, tag),
        "",
        "Read from the ``toml`` struct tags and the feature flag list of the runner's",
        "source (%s)" % SOURCE_URL,
        "at tag %s, commit %s." % (tag, commit),
        "See plugins/module_utils/runner_config_schema.py for what the lists mean.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "TAG = %s" % _literal(tag),
        "COMMIT = %s" % _literal(commit),
        "RELEASE = (%d, %d)" % (major, minor),
        "FILES = (",
    ]
    lines += _wrap(data["files"], "    ")
    lines += [")", "", "SECTIONS = {"]
    for path in sorted(data["sections"]):
        lines.append("    %s: (" % _literal(path))
        lines += _wrap(data["sections"][path], "        ")
        lines.append("    ),")
    lines += ["}", "", "OPEN_SECTIONS = ("]
    lines += ["    %s," % _literal(path) for path in data["open"]]
    lines += [")", "", "ARRAY_SECTIONS = ("]
    lines += ["    %s," % _literal(path) for path in data["arrays"]]
    lines += [")", "", "FEATURE_FLAGS = ("]
    lines += _wrap(data["flags"], "    ")
    lines += [")", ""]
    return "\n".join(lines)


def render_index(modules):
    """runner_keys/__init__.py for the data modules ``modules`` (names like v19_3)."""
    ordered = sorted(modules, key=lambda name: tuple(int(part) for part in name[1:].split("_")))
    lines = [
        "# -*- coding: utf-8 -*-",
        "# Generated by scripts/runner_keys.py: do not edit by hand.",
        '"""The key lists of the GitLab Runner release lines this collection knows, oldest first.',
        "",
        "One data module per release line (major.minor), each generated from the runner's",
        "source at the tag it records (``TAG``, ``COMMIT``). Imported one by one so that",
        "Ansible ships them all with the modules that use them.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
    ]
    lines += ["from %s import %s" % (PACKAGE, name) for name in ordered]
    lines += ["", "RELEASE_LINES = ("]
    lines += _wrap(ordered, "    ", literal=str)
    lines += [")", ""]
    return "\n".join(lines)


def module_name(tag):
    return "v%d_%d" % release_line(tag)


def committed(out):
    """{module name: recorded tag} of the data modules in ``out``."""
    found = {}
    for name in sorted(os.listdir(out)) if os.path.isdir(out) else []:
        if re.fullmatch(r"v[0-9]+_[0-9]+\.py", name):
            with open(os.path.join(out, name), encoding="utf-8") as handle:
                match = re.search(r'^TAG = "([^"]+)"$', handle.read(), re.M)
            if not match:
                raise SourceError("%s records no TAG" % name)
            found[name[:-3]] = match.group(1)
    return found


def latest_patch_tags(git_dir, majors):
    proc = subprocess.run(["git", "--git-dir", git_dir, "tag", "--list", "v*"], capture_output=True, text=True,
                          check=True)
    newest = {}
    for tag in proc.stdout.split():
        match = _RELEASE.match(tag)
        if match and int(match.group(1)) in majors:
            line = (int(match.group(1)), int(match.group(2)))
            if line not in newest or int(match.group(3)) > newest[line][0]:
                newest[line] = (int(match.group(3)), tag)
    return [tag for dummy, tag in (newest[line] for line in sorted(newest))]


def _write(path, text):
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)


def _diff(path, have, want):
    sys.stdout.writelines(difflib.unified_diff(have.splitlines(True), want.splitlines(True),
                                               path + " (committed)", path + " (from the source)"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--git-dir", help="a clone (bare or not) of the gitlab-runner repository with its tags")
    where.add_argument("--source", help="a checked-out gitlab-runner work tree")
    parser.add_argument("--tag", help="with --source: the tag to record (default: git describe --exact-match)")
    parser.add_argument("--latest-patch", nargs="+", type=int, metavar="MAJOR",
                        help="with --git-dir: one list per minor line of these majors, from its newest patch tag")
    parser.add_argument("--check", action="store_true",
                        help="regenerate the committed lists from their tags and compare; write nothing")
    parser.add_argument("--out", default=OUT_DIR, help="where the data modules are (default: %(default)s)")
    parser.add_argument("tags", nargs="*", help="with --git-dir: tags to generate (one per release line)")
    args = parser.parse_args(argv)
    out = args.out

    try:
        if args.check:
            return check(args, out)
        if args.source:
            trees = [WorkTree(args.source, args.tag)]
        else:
            tags = list(args.tags) + (latest_patch_tags(args.git_dir, set(args.latest_patch))
                                      if args.latest_patch else [])
            if not tags:
                parser.error("name tags, or --latest-patch MAJOR ..., or --check")
            lines = [module_name(tag) for tag in tags]
            if len(set(lines)) != len(lines):
                parser.error("two tags of one release line: %s" % ", ".join(tags))
            trees = [GitTree(args.git_dir, tag) for tag in tags]
        os.makedirs(out, exist_ok=True)
        for tree in trees:
            name = module_name(tree.tag)
            _write(os.path.join(out, name + ".py"), render(tree.tag, tree.commit, key_lists(tree)))
            print("wrote %s.py from %s (%s)" % (name, tree.tag, tree.commit))
        _write(os.path.join(out, "__init__.py"), render_index(committed(out)))
    except SourceError as exc:
        sys.stderr.write("runner_keys: %s\n" % exc)
        return 2
    return 0


def check(args, out):
    lists = committed(out)
    if not lists:
        sys.stderr.write("runner_keys: no committed lists in %s\n" % out)
        return 1
    failed = False
    work_tree = WorkTree(args.source, args.tag) if args.source else None
    if work_tree is not None and work_tree.tag not in lists.values():
        sys.stderr.write("runner_keys: no committed list records the tag %s\n" % work_tree.tag)
        return 1
    for name, tag in lists.items():
        if work_tree is not None:
            if work_tree.tag != tag:
                continue
            tree = work_tree
        else:
            tree = GitTree(args.git_dir, tag)
        path = os.path.join(out, name + ".py")
        with open(path, encoding="utf-8") as handle:
            have = handle.read()
        want = render(tree.tag, tree.commit, key_lists(tree))
        if have != want:
            failed = True
            _diff(os.path.relpath(path, ROOT), have, want)
        else:
            print("%s.py: the same as generated from %s (%s)" % (name, tag, tree.commit))
    index = os.path.join(out, "__init__.py")
    have = open(index, encoding="utf-8").read() if os.path.exists(index) else ""
    want = render_index(lists)
    if have != want:
        failed = True
        _diff(os.path.relpath(index, ROOT), have, want)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
