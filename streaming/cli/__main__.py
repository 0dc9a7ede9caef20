"""``python -m streaming.cli``: the same as the ``driftloop`` command."""

from streaming.cli import run

run()
