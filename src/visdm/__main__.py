"""``python -m visdm`` is the ``visdm`` command."""

from visdm.cli import main

main()
