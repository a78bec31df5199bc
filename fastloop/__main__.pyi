"""Typing stub for ``python -m fastloop`` (see fastloop/_cli.py)."""

from fastloop._cli import main as main
