"""The ``hdmap`` command line: one module per subcommand, wired in :mod:`flows.cli.main`."""
