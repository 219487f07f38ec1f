"""Maintainer commands that no notebook imports: ``python -m tools.<name>`` (``make gpu-check``)."""
