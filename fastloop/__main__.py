"""python -m fastloop info | bench: see fastloop/_cli.py."""
import sys

from fastloop._cli import main

if __name__ == "__main__":
    sys.exit(main())
