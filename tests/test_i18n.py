"""Every message a user reads exists in both catalogues, and both languages reach the output."""

from __future__ import annotations

import re
import string
from pathlib import Path

from hvrescue.report.i18n import Messages, catalogue, detect_language
from tests.helpers import run_cli

SRC = Path(__file__).resolve().parents[1] / "src" / "hvrescue"


def emitted_keys() -> set[str]:
    keys: set[str] = set()
    pattern = re.compile(r"""["']((?:file|io|vhdx|vhd|chain|error|ui|finding)\.[a-z0-9.\-]+)["']""")
    for py in SRC.rglob("*.py"):
        keys |= set(pattern.findall(py.read_text(encoding="utf-8")))
    return {k for k in keys if not k.endswith(".") and k not in {"vhdx.md"}}


def test_catalogues_have_the_same_keys_and_placeholders():
    en, ja = catalogue("en"), catalogue("ja")
    assert set(en) == set(ja)
    fmt = string.Formatter()
    for key in en:
        fields_en = {f for _, f, _, _ in fmt.parse(en[key]) if f}
        fields_ja = {f for _, f, _, _ in fmt.parse(ja[key]) if f}
        assert fields_en == fields_ja, key


def test_every_code_and_key_used_in_code_has_a_message():
    en = catalogue("en")
    prefixes = ("ui.col.", "ui.severity.", "ui.status.")
    missing = {k for k in emitted_keys() if k not in en and not k.startswith(prefixes)}
    assert not missing, missing


def test_japanese_output(corpus_dir):
    path = corpus_dir / "dissect-hypervisor/differencing.avhdx"
    ja = run_cli("--lang", "ja", "check", path)
    assert "親ディスクが見つかりません" in ja.stdout
    en = run_cli("check", path, env={"LANG": "en_US.UTF-8"})
    assert "Parent not found" in en.stdout
    by_env = run_cli("check", path, env={"HVRESCUE_LANG": "ja"})
    assert "親ディスク" in by_env.stdout
    as_json = run_cli("--lang", "ja", "check", "--json", path).json()
    assert as_json["findings"][0]["code"] == "chain.parent.missing"
    assert "親ディスク" in as_json["findings"][0]["message"]


def test_language_detection(monkeypatch):
    monkeypatch.delenv("HVRESCUE_LANG", raising=False)
    monkeypatch.setenv("LANG", "ja_JP.UTF-8")
    monkeypatch.delenv("LC_ALL", raising=False)
    monkeypatch.delenv("LC_MESSAGES", raising=False)
    assert detect_language(None) == "ja"
    assert detect_language("en") == "en"
    monkeypatch.setenv("LANG", "de_DE.UTF-8")
    assert detect_language(None) == "en"
    assert Messages("ja")("chain.cycle", parent="x").endswith("(循環)")
