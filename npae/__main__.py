"""``python -m npae`` is the ``npae`` command."""
import sys

from npae.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
