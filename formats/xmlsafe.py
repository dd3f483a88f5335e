"""Safe XML parsing shared by every XML format: a size limit, no entities, no DTD, no network.

The size is checked before anything is read. A document that declares entities (external
entities, or the nested internal ones of an entity-expansion bomb) is refused before the parser
sees it, and the parser itself runs with entity resolution, DTD loading and network access off.
A format may refuse any DOCTYPE at all (``doctype_refusal``). Every refusal is a one-line
:class:`~pipeline.errors.FormatError` (or :class:`~pipeline.errors.HDMapIOError` when the file
cannot be opened) naming the file.

>>> import tempfile, pathlib
>>> p = pathlib.Path(tempfile.mkdtemp()) / "a.xml"
>>> _ = p.write_text("<root><child/></root>")
>>> parse_xml(p).getroot().tag
'root'
>>> _ = p.write_text("")
>>> parse_xml(p)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pipeline.errors.FormatError: .../a.xml: empty XML document
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lxml import etree

from pipeline.errors import FormatError, HDMapIOError

__all__ = ["MAX_XML_BYTES", "parse_xml", "parse_xml_bytes", "safe_parser"]

#: Largest file :func:`parse_xml` accepts by default, bytes (large city maps are tens of MB).
MAX_XML_BYTES = 512 * 1024 * 1024

_ENTITY_DECL = re.compile(rb"<!ENTITY", re.IGNORECASE)
_DOCTYPE = re.compile(rb"<!DOCTYPE", re.IGNORECASE)


def safe_parser() -> etree.XMLParser:
    """An lxml parser that resolves no entities, loads no DTD and never touches the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        huge_tree=False,
        load_dtd=False,
        dtd_validation=False,
        remove_comments=True,
        remove_pis=True,
        remove_blank_text=True,
    )


def parse_xml(
    path: str | os.PathLike[str],
    *,
    max_bytes: int = MAX_XML_BYTES,
    doctype_refusal: str | None = None,
) -> etree._ElementTree:
    """Parse the XML file ``path`` safely and return its tree.

    ``doctype_refusal``, when given, is the message for refusing any DOCTYPE; otherwise a DOCTYPE
    is accepted as long as it declares no entities.
    """
    path = Path(path)
    if path.is_dir():
        raise HDMapIOError("is a folder, not an XML file", path=path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise HDMapIOError("no such file", path=path) from None
    except OSError as exc:
        raise HDMapIOError(f"cannot open: {exc.strerror or exc}", path=path) from exc
    if size > max_bytes:
        raise FormatError(
            f"file is {size} bytes, more than the reader's limit of {max_bytes} bytes "
            "(refused before reading)",
            path=path,
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise HDMapIOError(f"cannot read: {exc.strerror or exc}", path=path) from exc
    return parse_xml_bytes(data, path=path, max_bytes=max_bytes, doctype_refusal=doctype_refusal)


def parse_xml_bytes(
    data: bytes,
    *,
    path: str | os.PathLike[str] = "<bytes>",
    max_bytes: int = MAX_XML_BYTES,
    doctype_refusal: str | None = None,
) -> etree._ElementTree:
    """Parse XML held in memory with the same checks as :func:`parse_xml`; ``path`` names it.

    >>> parse_xml_bytes(b"<root/>").getroot().tag
    'root'
    >>> parse_xml_bytes(b"", path="tile 1")
    Traceback (most recent call last):
    ...
    pipeline.errors.FormatError: tile 1: empty XML document
    """
    if len(data) > max_bytes:
        raise FormatError(
            f"document is {len(data)} bytes, more than the reader's limit of {max_bytes} bytes",
            path=path,
        )
    if not data.strip():
        raise FormatError("empty XML document", path=path)
    scan = data.replace(b"\x00", b"")  # also catches UTF-16 text
    doctype = _DOCTYPE.search(scan)
    if doctype and doctype_refusal:
        raise FormatError(doctype_refusal, path=path)
    if doctype and _ENTITY_DECL.search(scan, doctype.start()):
        raise FormatError(
            "XML declares entities in its DTD; refused (no entity expansion)", path=path
        )
    try:
        root = etree.fromstring(data, parser=safe_parser())
    except etree.XMLSyntaxError as exc:
        line = exc.lineno if exc.lineno is not None else "?"
        msg = exc.msg or str(exc)
        where = "" if f"line {line}" in msg else f" (line {line})"
        raise FormatError(f"not well-formed XML: {msg}{where}", path=path) from None
    if root is None:
        raise FormatError("empty XML document", path=path)
    tree = root.getroottree()
    if doctype_refusal and (tree.docinfo.doctype or tree.docinfo.internalDTD is not None):
        raise FormatError(doctype_refusal, path=path)
    return tree
