"""``python -m app`` is the ``cityrisk`` command."""

from app.cli import main

main()
