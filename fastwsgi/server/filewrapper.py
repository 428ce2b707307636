"""wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling").

Theory of operation: an application returns `environ["wsgi.file_wrapper"](filelike, blksize)`.
Iterating it reads `blksize` pieces, so it works for any object with read(). When the wrapped object is
a regular file with a real descriptor, `sendfile_source()` tells the response writer where the bytes are
(descriptor, position, bytes left) and the kernel copies them with os.sendfile, never through Python.
Where os.sendfile does not exist (OpenBSD, NetBSD), or under --no-sendfile (`ReadingFileWrapper`), there
is no source and the file is iterated.
`close()` closes the wrapped object, as PEP 3333 requires.
"""

import os
import stat

__all__ = ["FileWrapper", "ReadingFileWrapper"]

_SENDFILE = hasattr(os, "sendfile")


class FileWrapper:
    def __init__(self, filelike, blksize: int = 8192):
        self.filelike = filelike
        self.blksize = blksize
        if hasattr(filelike, "close"):
            self.close = filelike.close

    def __iter__(self):
        return self

    def __next__(self):
        data = self.filelike.read(self.blksize)
        if data:
            return data
        raise StopIteration

    def sendfile_source(self):
        """(fd, offset, bytes_left) for a regular file that os.sendfile can send, else None."""
        if not _SENDFILE:
            return None
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                return None
            offset = self.filelike.tell() if hasattr(self.filelike, "tell") else os.lseek(fd, 0, os.SEEK_CUR)
        except (AttributeError, OSError, ValueError):
            return None
        return fd, offset, max(0, info.st_size - offset)


class ReadingFileWrapper(FileWrapper):
    """wsgi.file_wrapper under --no-sendfile: the file is always read and written in pieces (the
    response writer sends with os.sendfile only an object whose type is exactly FileWrapper)."""

    def sendfile_source(self):
        return None
