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


def add_publish_arguments(parser: argparse.ArgumentParser) -> None:
    """``--level`` (NDS.Live tile level) and ``--confidentiality`` (coordinate processing step)."""
    parser.add_argument(
        "--level",
        type=int,
        default=13,
        choices=range(0, 16),
        metavar="0-15",
        help="NDS.Live tile level (default 13, about 2.4 km)",
    )
    parser.add_argument(
        "--confidentiality",
        default="identity",
        metavar="SPEC",
        help="'identity' (default) or 'package.module:attribute' applied to published tiles",
    )
