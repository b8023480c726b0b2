"""Whether a SQLite database in WAL mode changed, read from its WAL index without a query.

Every connection to a WAL database shares the WAL index, the ``-shm`` file next to it, mapped
into memory. Its header (https://www.sqlite.org/walformat.html, "The WAL-Index Header") is
rewritten by every commit, in any process, before the commit is visible to readers: it holds a
count of transactions, the last valid frame and a checksum of the header. So a header that
reads the same as before means no commit came since, and comparing it costs a memory read,
where ``PRAGMA data_version`` starts and ends a read transaction (file locks, system calls).

The header has two copies; a writer fills the second, then the first, which is the one read
here. A read that overlaps a commit returns the header before it (as if read a moment sooner),
after it, or a mix of both, which the caller takes for a change and so reads again.

The file must stay mapped only while a connection to the database is open in this process:
that connection's shared lock is what keeps another process from truncating the file.
"""

import mmap
import os
import struct

# The header's first fields: iVersion, 4 unused bytes, iChange, isInit (native byte order).
_FIELDS = struct.Struct("=I4xIB")
# iVersion of every WAL index since SQLite 3.7.0.
_VERSION = 3007000
# The first copy of the header: up to and including its checksum.
_HEADER_SIZE = 48


class WalIndex:
    """The first header copy of ``<database>-shm``, mapped read-only."""

    def __init__(self, mapped: mmap.mmap) -> None:
        self._mapped = mapped

    @classmethod
    def open(cls, database: str) -> "WalIndex | None":
        """The WAL index of ``database``, or None when it has none this process can map (not
        in WAL mode, an index kept in heap memory, an unknown format)."""
        try:
            fd = os.open(f"{database}-shm", os.O_RDONLY)
        except OSError:
            return None
        try:
            if os.fstat(fd).st_size < _HEADER_SIZE:
                return None
            mapped = mmap.mmap(fd, _HEADER_SIZE, access=mmap.ACCESS_READ)
        except (OSError, ValueError):
            return None
        finally:
            os.close(fd)
        index = cls(mapped)
        if not index.valid():
            index.close()
            return None
        return index

    def valid(self) -> bool:
        """Whether the header is one this module knows, and initialised."""
        version: int
        initialised: int
        version, _, initialised = _FIELDS.unpack_from(self._mapped, 0)
        return version == _VERSION and initialised == 1

    def header(self) -> bytes:
        """The header as it is now: any commit since the last call makes it differ."""
        return self._mapped[:_HEADER_SIZE]

    def close(self) -> None:
        """Unmap the file."""
        self._mapped.close()
