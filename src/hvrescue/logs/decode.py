"""Bytes of a text file to str: moved to :mod:`hvrescue.evidence.text` (the walker's text
reader), kept here under its old name."""

from __future__ import annotations

from hvrescue.evidence.text import BOMS, decode_text, looks_binary, sniff_utf16

__all__ = ["BOMS", "decode_text", "looks_binary", "sniff_utf16"]
