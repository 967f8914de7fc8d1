"""One read buffer per thread, for every read of a pipe or a socket.

Reading into a new object of 256 KiB each time (``os.read(fd, n)``, a transport's
``recv(n)``), the C allocator may serve it with ``mmap``, then shrink and unmap it: three
system calls and page faults per read. The worker's input and its HTTP connections read
into their thread's buffer instead, and copy out what came (``view[:n].tobytes()``)
before anything else on the thread reads into it.
"""

from __future__ import annotations

import threading

#: The most one read takes.
READ_SIZE = 256 * 1024

_thread = threading.local()


def read_buffer() -> memoryview:
    """This thread's read buffer (made at its first read)."""
    view: memoryview | None = getattr(_thread, "view", None)
    if view is None:
        view = _thread.view = memoryview(bytearray(READ_SIZE))
    return view
