"""``python -m facecodec.cli``: the ``fcz`` command."""
from facecodec.cli import main

main()
