"""Traffic-sign codes for OpenDRIVE signals: :class:`SignClass` <-> (country, type, subtype).

Signals are written with ``country="CN"`` and these type/subtype codes, the same as the
``opendrive_type``/``opendrive_subtype`` columns of the sign-class code list in
``standards/codelists.json`` (W warning, P prohibition, M mandatory, G guide; stop and yield are
prohibition signs with their own subtype). A class without a code is written as type ``-1``
(never an empty type). Reading maps the same codes back; any other country or code reads as
:attr:`SignClass.UNKNOWN`.

>>> SIGN_CODES[SignClass.STOP]
('P', 'stop')
>>> sign_class_of("CN", "P", "stop")
<SignClass.STOP: 'stop'>
>>> sign_class_of("DE", "206", "-1")
<SignClass.UNKNOWN: 'unknown'>
"""

from __future__ import annotations

from pipeline.model import SignClass, SignShape

__all__ = ["COUNTRY", "SIGN_CODES", "SIGN_SHAPE", "sign_class_of"]

COUNTRY = "CN"

#: SignClass -> (type, subtype) written on ``<signal>``.
SIGN_CODES: dict[SignClass, tuple[str, str]] = {
    SignClass.WARNING: ("W", "-1"),
    SignClass.PROHIBITION: ("P", "-1"),
    SignClass.STOP: ("P", "stop"),
    SignClass.YIELD: ("P", "yield"),
    SignClass.MANDATORY: ("M", "-1"),
    SignClass.GUIDE: ("G", "-1"),
    SignClass.UNKNOWN: ("-1", "-1"),
}

#: The usual panel shape of each class (GB 5768.2), for signals read from a file.
SIGN_SHAPE: dict[SignClass, SignShape] = {
    SignClass.WARNING: SignShape.TRIANGLE,
    SignClass.PROHIBITION: SignShape.CIRCLE,
    SignClass.STOP: SignShape.OCTAGON,
    SignClass.YIELD: SignShape.INVERTED_TRIANGLE,
    SignClass.MANDATORY: SignShape.CIRCLE,
    SignClass.GUIDE: SignShape.RECTANGLE,
    SignClass.UNKNOWN: SignShape.RECTANGLE,
}

_CLASS_OF_CODE = {codes: cls for cls, codes in SIGN_CODES.items()}


def sign_class_of(country: str, type_code: str, subtype: str) -> SignClass:
    """The sign class of a signal's country, type and subtype (unknown unless a CN code)."""
    if country.upper() not in ("CN", "CHN"):
        return SignClass.UNKNOWN
    cls = _CLASS_OF_CODE.get((type_code, subtype))
    if cls is None:
        cls = _CLASS_OF_CODE.get((type_code, "-1"), SignClass.UNKNOWN)
    return cls
