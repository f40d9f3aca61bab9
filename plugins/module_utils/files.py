"""Careful reads of small files on a runner host, shared by the audit modules.

Audited hosts are not ours: a path may be a FIFO, a device or a huge file. Open
without blocking, check it is a regular file on the open descriptor (no race
with a swapped path), and read a bounded number of bytes.
"""

import os
import stat


def read_head(path, limit, follow_symlinks=True):
    """Up to ``limit`` bytes of the regular file at ``path``, or None.

    None when the path is missing, unreadable, not a regular file, or (with
    ``follow_symlinks=False``) a symbolic link.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)
