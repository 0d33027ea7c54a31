"""When two label texts name the same class.

Providers write labels by hand, in many files: ``cat`` and ``Cat``, or ``café`` typed composed
and decomposed, must not become different classes without a word. Canonically equivalent
Unicode forms are the same text (labels are stored in NFC); spellings that differ only in letter
case are refused where they meet (an asset's labels file, a label set, a proposal's classes).
"""

from __future__ import annotations

import unicodedata

__all__ = ["label_key", "nfc"]


def nfc(label: str) -> str:
    """The label as stored: surrounding space removed, Unicode NFC form."""
    return unicodedata.normalize("NFC", label.strip())


def label_key(label: str) -> str:
    """What makes two labels one class: NFC form, letter case folded."""
    return nfc(label).casefold()
