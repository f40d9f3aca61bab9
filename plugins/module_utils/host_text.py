"""Small text helpers the host-side modules share: short one-line evidence, and
user and group names that fall back to the number when the host has no entry."""

from __future__ import annotations

import grp
import pwd

EVIDENCE_LIMIT = 300


def clip(text, limit=EVIDENCE_LIMIT):
    """``text`` on one line, at most ``limit`` characters."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def user_name(uid):
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def group_name(gid):
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
