"""Files symnet writes: output folders checked before any work, and atomic writes."""

import os
import tempfile
import time
from pathlib import Path

from symnet.errors import ConfigurationError, quoted

STALE_TEMPORARY_SECONDS = 60


def writable_folder(path, what, make=False):
    """``path`` as a :class:`~pathlib.Path` to a folder that exists or can be made, and takes new files.

    Output paths are checked with this before any work, so that a bad one fails at once, in one line, rather than
    with a traceback after minutes of work; ``what`` names the folder in the message.  The check writes a
    temporary file into ``path`` or, while it is missing, into its nearest existing ancestor (permission bits do
    not tell: root ignores them, and some file systems refuse anyway).  The folder is made only with ``make``.
    """
    folder = Path(path)
    shown = quoted(str(path))
    if folder.exists() and not folder.is_dir():
        raise ConfigurationError(f"{what} {shown} is a file, not a folder; give a folder that exists or can be "
                                 "created")
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigurationError(f"{what} {shown} cannot be written to: {quoted(str(existing))} is a file, not a "
                                 "folder; give a folder that exists or can be created")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        if make:
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigurationError(f"{what} {shown} cannot be written to ({error.strerror or error}); give a folder "
                                 "that exists or can be created, and that you can write to") from None
    return folder


def _umask():
    """The process's umask (read by setting and restoring it: the only portable way)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path, data):
    """Write ``data`` (text or bytes) to ``path`` via a temporary file in the same folder and a rename.

    A reader never sees half a file; the file gets the permissions of a plain ``open`` under the user's umask
    (``mkstemp`` alone would make it 0600, unreadable to the rest of a shared folder).  Temporary files that a
    killed writer left behind (``<name>.*.tmp`` older than a minute) are removed.
    """
    path = Path(path)
    for stale in path.parent.glob(f"{path.name}.*.tmp"):
        try:
            if time.time() - stale.stat().st_mtime > STALE_TEMPORARY_SECONDS:
                stale.unlink()
        except OSError:
            pass
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
