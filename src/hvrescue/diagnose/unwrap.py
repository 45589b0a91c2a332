"""A value as a rule's condition reads it: a string as it is, anything else as its JSON text,
and, for a regular expression, with its line breaks as spaces."""

from __future__ import annotations

import json
import re
from typing import Any


def as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


_LINE_BREAK = re.compile(r"[ \t]*\r?\n[ \t]*")


def unwrapped(text: str) -> str:
    """``text`` as a regular expression of a rule searches it: a line break (and the spaces
    around it) is one space, so that a sentence a console, a mail client or a log viewer
    wrapped still reads as the words the rule names ("the hypervisor is not / running")."""
    return _LINE_BREAK.sub(" ", text) if "\n" in text else text
