"""Shared helpers for the CNN course notebooks.

Every notebook imports from here instead of carrying its own copy of a helper:
``runtime`` (profiles, seeds, devices, paths), ``data`` (loaders and tf.data
pipelines), ``results`` (CSV result tables), ``plotting`` (figures) and the
topic modules that later notebooks add.  Modules are imported lazily by the
notebooks themselves, so ``import utils`` stays cheap and does not import
TensorFlow.
"""

__all__ = ["runtime", "data", "results", "plotting", "run"]
