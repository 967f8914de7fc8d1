"""``python3 -m dspgo_worker``: see :mod:`dspgo_worker.cli`."""

from .cli import main

if __name__ == "__main__":
    main()
