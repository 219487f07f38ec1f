"""Shared helpers for the CNN course notebooks.

Every notebook imports its helpers from here; modules are imported by the notebooks themselves, so
``import utils`` stays cheap and does not import TensorFlow.
"""

__all__ = ["runtime", "data", "results", "plotting"]
