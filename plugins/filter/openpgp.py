"""Controller-side filters that read an OpenPGP key file with GnuPG.

Written by hand because ``community.crypto.gpg_fingerprint`` returns the
fingerprint of the *first* key in its input only.  apt trusts *every* key in
a ``Signed-By`` keyring, so checking the first fingerprint and then
installing the whole downloaded file let a file holding the pinned key plus
an attacker's key through.  These filters look at all of it:

``openpgp_keys``
    every primary key in the data with its subkeys, as GnuPG reads them;
``openpgp_key_problems``
    why the data is not exactly one pinned key (``[]`` when it is);
``openpgp_pinned_key``
    the pinned key, re-exported by GnuPG, for installing on hosts.

The rule ``openpgp_key_problems`` applies: the data must hold exactly one
primary key and its fingerprint must be the pinned one.  Any other primary
key is a problem (named by its fingerprint), and so is the pinned
fingerprint appearing as a subkey of another primary key (whoever owns that
primary key would be trusted), a revoked or expired pinned key, secret key
material, no key at all, keys GnuPG refused to import and data it failed
to read.  Subkeys validly bound to the pinned key are fine: they are the
key owner's.  Every armored block counts, and so does data outside them:
gpg itself reads only the armored blocks of a text file, so the stretches
between and after them are imported on their own (a binary key appended
after the armor is found that way).

What gets installed is not the downloaded file but ``openpgp_pinned_key``'s
re-export of the pinned key from the throwaway keyring the checks ran on.
The checks can only speak for what this GnuPG understood; apt (gpgv on
Debian 12, Sequoia's sqv on Debian 13) parses the file itself and might
accept what GnuPG skipped or dropped: text or packets around and between
armored blocks, key versions this GnuPG does not support, subkeys without a
valid binding signature.  A re-export holds only packets GnuPG parsed,
verified and bound to the pinned key, so what apt sees is what was checked.
``export-clean`` also leaves out signatures that cannot be checked here
(certifications by other keys): apt does not use them.  The export is
deterministic (same input, same GnuPG: same bytes; no version or comment
header), so re-runs of the role do not change the installed keyring.

Every GnuPG call runs with ``--homedir`` set to a fresh private temporary
directory that is always removed; the user's keyrings, ``gpg.conf`` and
agent are never used.  ``gpg`` (GnuPG 2.1 or later) must be on the
controller's ``PATH``.

Documentation for ``ansible-doc`` lives in the sidecar files
``openpgp_keys.yml``, ``openpgp_key_problems.yml`` and
``openpgp_pinned_key.yml`` next to this file.
"""

import os
import re
import shutil
import subprocess
import tempfile

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - used outside Ansible
    AnsibleFilterError = ValueError

_FINGERPRINT = re.compile(r"[0-9A-F]{40}|[0-9A-F]{64}")
# One ASCII-armored block, BEGIN line to END line (RFC 4880, section 6.2).
_ARMOR_BLOCK = re.compile(
    rb"^-----BEGIN PGP [^\r\n]*?-----[ \t]*\r?$.*?^-----END PGP [^\r\n]*?-----[ \t]*\r?$",
    re.MULTILINE | re.DOTALL,
)
_TIMEOUT = 120
_MAX_STDERR = 600
# IMPORT_RES fields (doc/DETAILS in GnuPG), by position after the keyword.
_IMPORT_RES_FIELDS = (
    "count", "no_user_id", "imported", "imported_rsa", "unchanged",
    "n_uids", "n_subk", "n_sigs", "n_revoc", "sec_read", "sec_imported",
    "sec_dups", "skipped_new_keys", "not_imported", "skipped_v3_keys",
)
_BASE_OPTIONS = (
    "--batch", "--no-tty", "--no-options", "--no-autostart",
    "--no-permission-warning", "--trust-model", "always",
)

# Longest temporary directory a keyring home is made in: leaves room in a Unix
# socket path for "/hgr-openpgp-XXXXXXXX/S.gpg-agent.browser" and more.
_MAX_TEMP_BASE = 60


def _gpg_executable():
    """Return the path of ``gpg`` on the controller or raise."""
    path = shutil.which("gpg")
    if path is None:
        raise AnsibleFilterError(
            "openpgp: cannot find the 'gpg' executable on the controller "
            "(GnuPG 2.1 or later is needed to check OpenPGP keys; on "
            "Debian/Ubuntu: apt-get install gnupg)"
        )
    return path


def _as_bytes(content, name):
    """Return the key data as bytes (text is encoded as UTF-8)."""
    if isinstance(content, (bytes, bytearray, memoryview)):
        return bytes(content)
    if isinstance(content, str):
        text = str.__str__(content)
        try:
            # Undoes a 'surrogateescape' decode of binary data.
            return text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            # Not a key either way; let GnuPG say it holds no key.
            return text.encode("utf-8", "replace")
    raise AnsibleFilterError(
        "%s: expected the key file's content (text or bytes), got %s"
        % (name, "None" if content is None else type(content).__name__)
    )


def _normalize_fingerprint(fingerprint, name):
    """Return ``fingerprint`` upper-cased without spaces, or raise."""
    if not isinstance(fingerprint, str):
        raise AnsibleFilterError(
            "%s: the pinned fingerprint must be a string, got %s"
            % (name, type(fingerprint).__name__)
        )
    value = re.sub(r"\s+", "", str.__str__(fingerprint)).upper()
    if not _FINGERPRINT.fullmatch(value):
        raise AnsibleFilterError(
            "%s: the pinned fingerprint must be 40 or 64 hex digits (spaces "
            "allowed), got %r" % (name, str.__str__(fingerprint)[:100])
        )
    return value


def _environment():
    env = dict(os.environ)
    # --homedir wins over GNUPGHOME, but leave nothing pointing at the
    # user's setup; C locale so messages are predictable.
    env.pop("GNUPGHOME", None)
    env["LC_ALL"] = "C"
    env["LANGUAGE"] = "C"
    return env


def _stderr_tail(stderr):
    text = stderr.decode("utf-8", "replace").strip()
    return text if len(text) <= _MAX_STDERR else "..." + text[-_MAX_STDERR:]


class _Keyring(object):
    """A throwaway GnuPG home holding the imported key data."""

    def __init__(self, name):
        self.name = name
        self.executable = _gpg_executable()
        self.home = None
        self.env = _environment()

    def __enter__(self):
        base = tempfile.gettempdir()
        # gpg reaches its agent through a socket in the home directory even for
        # public keys; a Unix socket path holds at most 107 bytes, so under a long
        # TMPDIR gpg would fail ("File name too long") and a valid key would be
        # reported as unreadable. Such a TMPDIR is passed over for /tmp.
        if len(base) > _MAX_TEMP_BASE and os.path.isdir("/tmp"):
            base = "/tmp"
        self.home = tempfile.mkdtemp(prefix="hgr-openpgp-", dir=base)
        os.chmod(self.home, 0o700)
        return self

    def __exit__(self, *exc_info):
        # --no-autostart: no agent or dirmngr was started for this home.
        shutil.rmtree(self.home, ignore_errors=True)
        return False

    def run(self, args, data=None):
        """Run gpg; return ``(returncode, stdout bytes, stderr bytes)``."""
        command = [self.executable, "--homedir", self.home]
        command.extend(_BASE_OPTIONS)
        command.extend(args)
        try:
            proc = subprocess.run(
                command, input=data if data is not None else b"",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self.env, cwd=self.home, timeout=_TIMEOUT, check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise AnsibleFilterError(
                "%s: running %s failed: %s" % (self.name, self.executable, exc)
            )
        return proc.returncode, proc.stdout, proc.stderr

    def import_data(self, data):
        """Import ``data``; return the IMPORT_RES counters and gpg's rc."""
        returncode, stdout, stderr = self.run(
            ["--status-fd", "1", "--import"], data
        )
        counts = None
        for line in stdout.decode("utf-8", "replace").splitlines():
            fields = line.split()
            if fields[:2] == ["[GNUPG:]", "IMPORT_RES"]:
                values = fields[2:]
                counts = {}
                for key, value in zip(_IMPORT_RES_FIELDS, values):
                    counts[key] = int(value) if value.isdigit() else 0
        if counts is None:
            # gpg always reports IMPORT_RES, even for no data at all.
            raise AnsibleFilterError(
                "%s: gpg --import gave no result (exit status %d): %s"
                % (self.name, returncode, _stderr_tail(stderr))
            )
        for key in _IMPORT_RES_FIELDS:
            counts.setdefault(key, 0)
        return counts, returncode

    def list_keys(self):
        """Return the keyring's primary keys with their subkeys."""
        returncode, stdout, stderr = self.run([
            "--with-colons", "--with-fingerprint",
            "--with-subkey-fingerprint", "--list-keys",
        ])
        # gpg exits with 2 for an empty keyring; anything else is odd.
        if returncode != 0 and stdout.strip():
            raise AnsibleFilterError(
                "%s: gpg --list-keys failed (exit status %d): %s"
                % (self.name, returncode, _stderr_tail(stderr))
            )
        return _parse_colons(stdout.decode("utf-8", "replace"), self.name)

    def export(self, fingerprint):
        """Return the armored export of exactly ``fingerprint``."""
        returncode, stdout, stderr = self.run([
            "--armor", "--export-options", "export-clean",
            # Not "FPR!": that exports the primary key without its subkeys.
            "--export", fingerprint,
        ])
        if returncode != 0 or not stdout.startswith(b"-----BEGIN PGP PUBLIC KEY BLOCK-----"):
            raise AnsibleFilterError(
                "%s: gpg --export %s failed (exit status %d): %s"
                % (self.name, fingerprint, returncode, _stderr_tail(stderr))
            )
        return stdout.decode("ascii")


def _parse_colons(text, name):
    """Parse ``--with-colons`` key listing output into key dicts."""
    keys = []
    # The pub/sub record waiting for its fpr record: its kind and validity.
    pending_kind = pending_validity = None
    for line in text.splitlines():
        fields = line.split(":")
        record = fields[0]
        if record in ("pub", "sub"):
            if record == "sub" and not keys:
                raise AnsibleFilterError(
                    "%s: unexpected gpg output: a subkey before any key" % name
                )
            pending_kind = record
            pending_validity = fields[1] if len(fields) > 1 else ""
        elif record == "fpr" and pending_kind is not None:
            fingerprint = fields[9].upper() if len(fields) > 9 else ""
            if not _FINGERPRINT.fullmatch(fingerprint):
                raise AnsibleFilterError(
                    "%s: unexpected gpg output: bad fingerprint record %r"
                    % (name, line[:200])
                )
            kind, validity = pending_kind, pending_validity
            pending_kind = pending_validity = None
            if kind == "pub":
                keys.append({
                    "fingerprint": fingerprint,
                    "subkeys": [],
                    "revoked": validity == "r",
                    "expired": validity == "e",
                })
            else:
                keys[-1]["subkeys"].append(fingerprint)
    if pending_kind is not None:
        raise AnsibleFilterError(
            "%s: unexpected gpg output: a key without a fingerprint" % name
        )
    return keys


def _pieces(data):
    """Split key file data into the parts to import one by one.

    Binary data is imported as it is.  Text is split into its armored
    blocks plus the stretches outside them: gpg reads only the armored
    blocks of a text file and skips, without a word, binary packets
    appended after the last one, so each stretch is imported on its own
    to bring a key hidden there to light.  This is a best effort (gpg
    cannot find packets hidden behind text); what makes hidden data
    harmless is that only the re-export is installed.  Returns a list of
    ``(piece, is_rest)``.
    """
    stripped = data.lstrip()
    if not stripped or stripped[0] & 0x80:
        return [(data, False)]
    blocks = [match.group(0) for match in _ARMOR_BLOCK.finditer(data)]
    if not blocks:
        return [(data, False)]
    pieces = [(block, False) for block in blocks]
    for rest in _ARMOR_BLOCK.split(data):
        # A packet never starts with whitespace (its first byte has the
        # high bit set): drop the line break that ends an armored block.
        rest = rest.lstrip()
        if rest:
            pieces.append((rest, True))
    return pieces


def _inspect(content, name, export=None):
    """Import ``content`` into a throwaway keyring and read it back.

    Returns ``(keys, counts, returncode, exported)``: the keyring's keys,
    gpg's import counters summed over the pieces, the worst exit status and
    the armored export of fingerprint ``export`` (``None`` if not asked
    for, or if the keyring holds anything but that one key).
    """
    data = _as_bytes(content, name)
    totals = dict.fromkeys(_IMPORT_RES_FIELDS, 0)
    worst = 0
    with _Keyring(name) as keyring:
        for piece, is_rest in _pieces(data):
            counts, returncode = keyring.import_data(piece)
            if is_rest and not (counts["count"] or counts["imported"]
                                or counts["sec_read"]):
                # Only text (a comment, a blank line) around the blocks.
                continue
            for key in _IMPORT_RES_FIELDS:
                totals[key] += counts[key]
            worst = max(worst, returncode)
        keys = keyring.list_keys()
        exported = None
        # Only ever export from a keyring holding that one key: a
        # fingerprint also selects keys that have it as a subkey.
        if export is not None and [k["fingerprint"] for k in keys] == [export]:
            exported = keyring.export(export)
    return keys, totals, worst, exported


def _problems(keys, counts, returncode, pinned):
    """Apply the one-pinned-key rule; return human-readable problems."""
    problems = []
    if counts["sec_read"]:
        problems.append(
            "it contains secret key material (%d secret key(s)); a signing "
            "key file must hold the public key only" % counts["sec_read"]
        )
    # Keys gpg skipped: without a (validly self-signed) user ID, v3 keys,
    # and keys it rejected for other reasons.
    refused = counts["no_user_id"] + counts["skipped_v3_keys"] + counts["not_imported"]
    if keys and refused > 0:
        problems.append(
            "gpg refused %d of the %d keys in it" % (refused, counts["count"])
        )
    elif keys and returncode != 0:
        problems.append(
            "gpg reported errors reading it (exit status %d)" % returncode
        )
    if not keys:
        problems.append("it holds no OpenPGP public key that gpg can read")
        return problems
    if len(keys) > 1:
        problems.append(
            "it holds %d primary keys (%s), but exactly one is allowed: apt "
            "would trust every one of them"
            % (len(keys), ", ".join(k["fingerprint"] for k in keys))
        )
    for key in keys:
        if key["fingerprint"] == pinned:
            if key["revoked"]:
                problems.append("the key %s is revoked" % pinned)
            if key["expired"]:
                problems.append("the key %s has expired" % pinned)
        elif pinned in key["subkeys"]:
            problems.append(
                "key %s carries the pinned key %s as a subkey, not as its "
                "primary key: apt would trust key %s and all of its subkeys"
                % (key["fingerprint"], pinned, key["fingerprint"])
            )
        else:
            problems.append(
                "it has fingerprint %s, which is not the pinned fingerprint"
                % key["fingerprint"]
            )
    return problems


def openpgp_keys(content):
    """Return every primary key in ``content`` with its subkeys.

    Each entry is ``{"fingerprint": FPR, "subkeys": [FPR, ...],
    "revoked": bool, "expired": bool}``, fingerprints upper-case hex, in
    the order GnuPG lists them.  Raises ``AnsibleFilterError`` when ``gpg``
    is missing or the data holds no key GnuPG can read.
    """
    keys = _inspect(content, "openpgp_keys")[0]
    if not keys:
        raise AnsibleFilterError(
            "openpgp_keys: the data holds no OpenPGP public key that gpg can "
            "read (is it a key file?)"
        )
    return keys


def openpgp_key_problems(content, fingerprint):
    """Return why ``content`` is not exactly the key ``fingerprint``.

    ``[]`` means the data holds exactly one primary key, the pinned one
    (with any subkeys validly bound to it), not revoked or expired.
    ``fingerprint`` may contain spaces and lower-case hex digits.
    """
    name = "openpgp_key_problems"
    pinned = _normalize_fingerprint(fingerprint, name)
    keys, counts, returncode, _exported = _inspect(content, name)
    return _problems(keys, counts, returncode, pinned)


def openpgp_pinned_key(content, fingerprint):
    """Return the key ``fingerprint`` from ``content``, re-exported armored.

    Refuses (``AnsibleFilterError``) unless ``openpgp_key_problems`` finds
    no problem, so only checked key material can come out of it.
    """
    name = "openpgp_pinned_key"
    pinned = _normalize_fingerprint(fingerprint, name)
    keys, counts, returncode, exported = _inspect(content, name, export=pinned)
    problems = _problems(keys, counts, returncode, pinned)
    if problems:
        raise AnsibleFilterError(
            "openpgp_pinned_key: refusing to export key %s: %s"
            % (pinned, "; ".join(problems))
        )
    if exported is None:  # pragma: no cover - no problems means it is there
        raise AnsibleFilterError(
            "openpgp_pinned_key: key %s was not exported" % pinned
        )
    return exported


class FilterModule(object):
    """Ansible filter plugin: OpenPGP key file checks."""

    def filters(self):
        """Return the filters this plugin provides."""
        return {
            "openpgp_keys": openpgp_keys,
            "openpgp_key_problems": openpgp_key_problems,
            "openpgp_pinned_key": openpgp_pinned_key,
        }
