"""Every message a user reads exists in both catalogues, its templates are always filled, both
languages reach the output (--help included), and `explain` decodes any status value."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path
from typing import Any

import click
import pytest

from hvrescue.report.i18n import Messages, catalogue, detect_language, template_fields
from tests.helpers import run_cli

SRC = Path(__file__).resolve().parents[1] / "src" / "hvrescue"
LEFT = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*(?:![rsa])?\}")


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
        if key.startswith("click."):
            # click formats its messages with every field; a translation may leave one out
            # (the English type name in "{name} {filename!r} does not exist.").
            assert fields_ja <= fields_en, key
        else:
            assert fields_en == fields_ja, key


def test_every_code_and_key_used_in_code_has_a_message():
    en = catalogue("en")
    prefixes = ("ui.col.", "ui.severity.", "ui.status.")
    missing = {k for k in emitted_keys() if k not in en and not k.startswith(prefixes)}
    assert not missing, missing


# ---------------------------------------------------------------- templates are always filled
def _sample(name: str) -> Any:
    return {"count": 3, "offset": 4096, "length": 512, "path": "/evidence/x.vhdx"}.get(name, 7)


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_every_message_renders_with_its_parameters(lang: str):
    """Each template, filled with the parameters it names, leaves no placeholder behind (a
    malformed brace, a field the other language spells differently)."""
    msg = Messages(lang)
    for key, template in catalogue(lang).items():
        if key.startswith("click."):
            continue  # click fills these itself, with its own format (see the test above)
        params = {name: _sample(name) for name in template_fields(template)}
        text = msg(key, **params)
        assert not LEFT.search(text), (key, text)


# Calls that take a catalogue key but fill no message (a count of findings by code, ...).
NOT_MESSAGES = {"get", "setdefault", "pop", "has", "startswith", "endswith", "count", "append"}
# Calls whose parameters come as a dict at this position.
PARAMS_AT = {"Finding": 4, "Change": 1, "_report_error": 1}


def _call_sites() -> list[tuple[str, set[str] | None, str]]:
    """(key, the parameters a call gives, where) for every call in the code that names a
    catalogue key as a literal: msg("key", a=..), Finding("code", sev, path, offset, {..}),
    sink.add("code", sev, offset, k=..), errors("key", k=..), Change("code", {..}).
    None: the parameters cannot be known statically (**kwargs, a variable dict)."""
    en = catalogue("en")
    sites: list[tuple[str, set[str] | None, str]] = []
    for py in SRC.rglob("*.py"):
        tree = ast.parse(py.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and first.value in en):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in NOT_MESSAGES:
                continue
            given: set[str] | None = {k.arg for k in node.keywords if k.arg}
            if any(k.arg is None for k in node.keywords):
                given = None
            at = PARAMS_AT.get(name)
            if at is not None and len(node.args) > at and not isinstance(node.args[at], ast.Dict):
                given = None  # the parameters are built elsewhere
            offset_at = {"Finding": 3, "add": 2, "_add": 2}.get(name)
            if given is not None and offset_at is not None and len(node.args) > offset_at:
                value = node.args[offset_at]
                if not (isinstance(value, ast.Constant) and value.value is None):
                    given.add("offset")  # a finding's offset fills {offset}
            dicts = [a for a in node.args[1:] if isinstance(a, ast.Dict)]
            dicts += [k.value for k in node.keywords if k.arg == "params"]
            for d in dicts:
                if given is None or not isinstance(d, ast.Dict) or None in d.keys:
                    given = None
                    break
                given |= {k.value for k in d.keys if isinstance(k, ast.Constant)}
                given.discard("params")
            if name == "UndefinedContentError" and given is not None:
                given |= {"count", "bytes", "first"}  # it fills these from its gaps
            sites.append((str(first.value), given, f"{py.relative_to(SRC)}:{node.lineno}"))
    return sites


def test_every_call_gives_the_parameters_its_message_names():
    """A message filled at a call site with fewer parameters than its template names would
    print a literal {offset}: every literal key's call gives them all (both languages name
    the same ones, see above)."""
    en = catalogue("en")
    sites = _call_sites()
    assert len(sites) > 100  # the scan sees the code
    missing = []
    for key, given, where in sites:
        if given is None:
            continue
        lacking = template_fields(en[key]) - given
        if lacking:
            missing.append(f"{where}: {key} lacks {sorted(lacking)}")
    assert not missing, "\n".join(missing)


def test_a_finding_without_an_offset_names_no_offset():
    """io.read-error's text names {offset}: its findings always carry one."""
    from hvrescue.findings import Finding, Severity

    f = Finding("io.read-error", Severity.ERROR, "/x.vhdx", 1048576, {"length": 512})
    for lang in ("en", "ja"):
        text = Messages(lang)(f.message_key, **f.message_params)
        assert "1048576" in text and "512" in text and "{" not in text


def test_a_misfitting_format_spec_never_raises():
    msg = Messages("en")
    msg._cat = {"k": "{n:,} bytes of {total:d}"}
    assert msg("k", n="many", total=3) == "many bytes of 3"


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_explain_shows_a_template_with_readable_labels(lang: str):
    r = run_cli("--lang", lang, "explain", "vhdx.log.replay-needed")
    assert r.rc == 0, r.stderr
    assert "{" not in r.stdout
    label = "<entries>" if lang == "en" else "<エントリ数>"
    assert label in r.stdout
    data = run_cli("--lang", lang, "explain", "io.read-error", "--json").json()
    assert "{offset}" not in data["meaning"] and "<" in data["meaning"]


# ---------------------------------------------------------------- --help from the catalogues
def _commands() -> list[tuple[str, click.Command]]:
    from hvrescue.cli.main import cli

    out: list[tuple[str, click.Command]] = [("help.group", cli)]

    def walk(group: click.Group, prefix: str) -> None:
        for name, cmd in group.commands.items():
            out.append((f"{prefix}.{name}", cmd))
            if isinstance(cmd, click.Group):
                walk(cmd, f"{prefix}.{name}")

    walk(cli, "help")
    return out


def test_every_command_and_parameter_has_help_in_both_languages():
    from hvrescue.cli.help import param_keys

    en, ja = catalogue("en"), catalogue("ja")
    missing = []
    for key, cmd in _commands():
        if key not in en or key not in ja:
            missing.append(key)
        for param in cmd.params:
            if isinstance(param, click.Option) and not param.expose_value:
                continue  # --version: the catalogue's help.ui.version-option
            keys = param_keys(key, param)
            if not any(k in en and k in ja for k in keys):
                missing.append(" or ".join(keys))
    assert not missing, missing


def test_help_text_comes_from_the_catalogue():
    """What --help shows is the catalogue's text, not the decorator's."""
    en = run_cli("check", "--help")
    ja = run_cli("--lang", "ja", "check", "--help")
    assert catalogue("en")["help.check.deep"].split(".")[0] in " ".join(en.stdout.split())
    assert "割り当て済みの範囲もすべて読み" in ja.stdout and "オプション:" in ja.stdout
    assert "Usage:" in en.stdout and "Options:" in en.stdout and "Arguments:" in en.stdout
    by_env = run_cli("--help", env={"HVRESCUE_LANG": "ja"})
    assert "使い方:" in by_env.stdout and "コマンド:" in by_env.stdout
    after = run_cli("--help", "--lang", "ja")
    assert "使い方:" in after.stdout


def test_help_wraps_japanese_by_display_width():
    from hvrescue.cli.help_format import cell_width, wrap

    text = catalogue("ja")["help.guest"]
    lines = wrap(text, 40)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(cell_width(line) <= 40 for line in lines)
    assert not any(line.startswith(("、", "。", ")")) for line in lines)
    assert cell_width("ハッシュ") == 8 and cell_width("hash") == 4


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


def test_command_placeholders_in_the_readers_language():
    ja = Messages("ja")
    text = "hvrescue preserve <VM folder> <other storage> && windbg -z <copy of /x/a.dmp>"
    out = ja.placeholders(text)
    assert "<other storage>" not in out and "<VM folder>" not in out
    assert "/x/a.dmp" in out and "hvrescue preserve" in out
    assert Messages("en").placeholders(text) == text
    assert ja.placeholders("copy a<b c>d") == "copy a<b c>d"  # not a known placeholder
