"""Every ``<...>`` a rule's command asks a Japanese reader to fill in is in Japanese: each has a
``placeholder.*`` key in the catalogues (file names such as ``<merged.vhdx>`` and the VM's own
words, ``<VM 名>``, excepted)."""

from __future__ import annotations

import re

from hvrescue.diagnose.rules import load_rules
from hvrescue.report.i18n import Messages

DEFAULTS = re.compile(r"\{[a-z_]+\.[a-zA-Z0-9_.|]+(?::[a-z]+)*=([^{}]*)\}")
ENGLISH = re.compile(r"<(?!VM )[^<>]*[A-Za-z]{2,}[^<>]*>")


def test_every_placeholder_of_a_rule_command_is_translated() -> None:
    ja = Messages("ja")
    left: dict[str, set[str]] = {}
    for rule in load_rules():
        for step in rule.steps:
            command = ja.placeholders(DEFAULTS.sub(r"\1", step.command or ""))
            for found in ENGLISH.findall(command):
                if "." in found or re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", found):
                    continue  # a file name, or Japanese around a code (<ISO のドライブ>)
                left.setdefault(found, set()).add(rule.id)
    assert left == {}, left
