"""The ``hdmap`` command line: one module per subcommand, wired in :mod:`flows.cli.main`."""

import argparse


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """``--store URL``: ``sqlite:///PATH`` or ``postgresql://USER@HOST:PORT/DB``."""
    from tiles.store import DEFAULT_STORE_URL, default_store_url

    parser.add_argument(
        "--store",
        metavar="URL",
        default=default_store_url(),
        help="map store: sqlite:///PATH or postgresql://USER@HOST:PORT/DB "
        f"(default: $HDMAP_STORE or {DEFAULT_STORE_URL})",
    )
