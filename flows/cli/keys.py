"""``hdmap keys``: issue, revoke and list the access keys of a map store.

A key is printed once, when it is created; the store keeps only its SHA-256. Readers need a key of
role ``reader`` or ``publisher``; publishing needs ``publisher``.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_parser", "run"]

EPILOG = """\
examples:
  hdmap keys create --role reader --label "viewer on the survey van"
  hdmap keys create --store postgresql://postgres@127.0.0.1:5432/maps --role publisher
  hdmap keys list
  hdmap keys revoke 3f2a9c0d81b7e645

The store is --store, else the environment variable HDMAP_STORE, else sqlite:///hdmap-store.db
(the SQLite file hdmap-store.db in the working folder, created on first use). Store URLs: sqlite:///PATH
(sqlite:////abs/path.db for an absolute path) or postgresql://USER@HOST:PORT/DB.
exit status: 0 success, 2 bad usage (e.g. an unknown role), 3 bad store URL, unreachable store or
unknown key ID."""


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``keys`` (with ``create``, ``revoke``, ``list``) on the ``hdmap`` subparsers."""
    parser = subparsers.add_parser(
        "keys",
        help="issue, revoke and list access keys of a map store",
        description="Issue, revoke and list the access keys of a map store "
        "(roles: reader, publisher).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from flows.cli import add_store_argument

    store = argparse.ArgumentParser(add_help=False)
    add_store_argument(store)
    actions = parser.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
    create = actions.add_parser(
        "create",
        parents=[store],
        help="issue a key and print it (once: the store keeps only its hash)",
        description="Issue a key of a role and print it on stdout. It is not shown again.",
    )
    create.add_argument("--role", required=True, choices=("reader", "publisher"))
    create.add_argument("--label", default="", help="a note on who holds the key")
    create.set_defaults(run=run)
    revoke = actions.add_parser(
        "revoke",
        parents=[store],
        help="revoke a key by its ID",
        description="Revoke a key by its ID (the part after 'xsk_', as 'keys list' shows it).",
    )
    revoke.add_argument("key_id", metavar="KEY_ID", help="the key's public ID")
    revoke.set_defaults(run=run)
    listing = actions.add_parser(
        "list",
        parents=[store],
        help="list the keys (IDs, roles, labels, times; never the keys)",
        description="List every key issued, revoked ones too.",
    )
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=run)
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Carry out the ``keys`` action; return the exit status."""
    import json

    from tiles.store import open_store, redact_url

    with open_store(args.store) as store:
        if args.keys_action == "create":
            key = store.create_key(args.role, args.label)
            key_id = key.split("_")[1]
            print(key, flush=True)
            print(
                f"hdmap keys: created {args.role} key {key_id} in {redact_url(store.url)}; the key "
                "above is "
                "not shown again: keep it now (revoke with 'hdmap keys revoke "
                f"{key_id}')",
                file=sys.stderr,
            )
        elif args.keys_action == "revoke":
            store.revoke_key(args.key_id)
            print(f"revoked key {args.key_id}")
        else:
            keys = store.list_keys()
            if args.json:
                print(json.dumps([_key_dict(k) for k in keys], indent=2, ensure_ascii=False))
            else:
                print(f"{'KEY_ID':16}  {'ROLE':9}  {'CREATED':24}  {'REVOKED':24}  LABEL")
                for k in keys:
                    print(
                        f"{k.key_id:16}  {k.role:9}  {k.created:24}  {k.revoked or '-':24}  "
                        f"{k.label}"
                    )
    return 0


def _key_dict(key) -> dict:
    import dataclasses

    return dataclasses.asdict(key)
