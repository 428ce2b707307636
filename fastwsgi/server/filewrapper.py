"""wsgi.file_wrapper (PEP 3333 "Optional Platform-Specific File Handling").

Theory of operation: an application returns `environ["wsgi.file_wrapper"](filelike, blksize)`.
Iterating it reads `blksize` pieces, so it works for any object with read(). When the wrapped object is
a regular file with a real descriptor whose bytes are what read() returns (not a gzip file, not a
procfs file), `sendfile_source()` tells the response writer where the bytes are
(descriptor, position, bytes left) and the kernel copies them with os.sendfile, never through Python.
Where os.sendfile does not exist (OpenBSD, NetBSD), or under --no-sendfile (`ReadingFileWrapper`), there
is no source and the file is iterated.
`close()` closes the wrapped object, as PEP 3333 requires.
"""

import io
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
        if not _SENDFILE or not _reads_its_descriptor(self.filelike):
            return None
        try:
            fd = self.filelike.fileno()
            info = os.fstat(fd)
            # no block allocated: procfs and sysfs files, whose st_size (0, 4096) is not what read()
            # gives; read them (a regular file that is all holes only loses the sendfile speed-up)
            if not stat.S_ISREG(info.st_mode) or info.st_blocks == 0:
                return None
            offset = self.filelike.tell() if hasattr(self.filelike, "tell") else os.lseek(fd, 0, os.SEEK_CUR)
        except Exception:  # whatever the object's fileno() or tell() raises: read() it instead
            return None
        return fd, offset, max(0, info.st_size - offset)


def _reads_its_descriptor(filelike) -> bool:
    """Does read() give the bytes of fileno()'s file? Yes for what open() returns, binary or text;
    no for io streams that transform what they read (gzip, bz2 and lzma files, whose fileno() is
    the compressed file's). Objects that are not io streams (proxies such as tempfile's wrappers,
    Django's File) delegate to a file and are trusted."""
    if not isinstance(filelike, io.IOBase):
        return True
    if isinstance(filelike, io.TextIOWrapper):
        filelike = filelike.buffer
    if isinstance(filelike, (io.BufferedReader, io.BufferedRandom)):
        filelike = filelike.raw
    return isinstance(filelike, io.FileIO)


class ReadingFileWrapper(FileWrapper):
    """wsgi.file_wrapper under --no-sendfile: the file is always read and written in pieces (the
    response writer sends with os.sendfile only an object whose type is exactly FileWrapper)."""

    def sendfile_source(self):
        return None
