"""Prefect flows and the ``hdmap`` command line. Nothing imports ``flows``."""
