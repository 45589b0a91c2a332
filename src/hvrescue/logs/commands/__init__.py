"""Parsers of command outputs, recognised by content (English and Japanese)."""
