"""With --lang ja, no English interface word reaches the user: every command is run on corpus
inputs (text and JSON), and its output is scanned for ASCII words that are neither data (paths,
codes, identifiers, numbers, values the JSON holds as data, commands to copy) nor an allowed
technical term."""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import CORPUS, Result, run_cli

FIX = Path(__file__).parent / "fixtures"

# Technical terms a Japanese administrator reads as they are (product, format and protocol
# names, units, tool names, and the names of our own commands and options).
ALLOWED = {
    "vhdx", "avhdx", "vhd", "avhd", "hyper-v", "guid", "bat", "sha-256", "crc-32c", "ntfs",
    "fat", "ext2", "ext4", "xfs", "btrfs", "lvm", "evtx", "xml", "csv", "json", "jsonl",
    "html", "ntstatus", "hresult", "win32", "vss", "com", "rpc", "bcd", "windbg", "winre",
    "fuse", "zip", "raw", "utc", "iso", "cpu", "gpt", "mbr", "bitlocker", "windows",
    "microsoft", "powershell", "timesketch", "excel", "sqlite", "mib", "gib", "kib", "tib",
    "hvrescue", "ddrescue", "qemu-img", "chkdsk", "dism", "sfc", "nmi", "irql", "dpc", "wer",
    "cbs", "minidump", "regipy", "pytsk3", "defusedxml", "mfusepy", "vmms", "vmcx", "vmrs",
    "vmgs", "vmx", "svm", "uefi", "bios", "tpm", "eventsystem", "cryptsvc", "winmgmt",
    "svchost", "tasklist", "vssadmin", "wevtutil", "bcdedit", "wmic", "robocopy", "ctrl-c",
    "lsn", "iscsi", "smb", "diskpart", "vds", "wmi", "api", "utf-8", "bom", "efi", "esp",
    "tsk", "posix", "winsxs", "hyper", "net", "csrss", "winlogon", "lsass", "smss",
    # the names of hvrescue's commands
    "chain", "check", "info", "hash", "facts", "triage", "explain", "guest", "preserve",
    "verify", "inventory", "merge", "replay-log", "repair", "reparent", "salvage", "ls",
    "extract", "mount", "collect", "audit", "report", "fleet", "rebuild",
    # Windows commands
    "icacls", "fsutil",
    # product names
    "linux", "docker", "desktop", "wsl", "winfsp", "textfile",
}  # fmt: skip
# Keys of a JSON answer whose values a person reads (everything else is data).
HUMAN_KEYS = {"message", "meaning", "detail", "title", "text", "summary", "excerpt", "avoid"}
HUMAN_SUFFIXES = ("_text", "_message")
# Characters that make a token an identifier, a path, a number or a code.
IDENTIFIER = re.compile(r"[0-9./\\:_=#@{}\[\]|$%~]")
WORD = re.compile(r"[A-Za-z][A-Za-z'+-]*[A-Za-z]|[A-Za-z]")
PLACEHOLDER_LEFT = re.compile(r"\{[a-z_]+\}")
PLACEHOLDER = re.compile(r"<[^<>]+>")
# A code in kebab case (parent-missing, basic-data, vm-wont-start): an identifier.
KEBAB = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)+$")
# A PowerShell cmdlet (Set-VHD, Remove-VMSnapshot): a command's name, not an interface word.
CMDLET = re.compile(r"^[A-Z][A-Za-z]+-[A-Z][A-Za-z0-9]+$")
PROGRAM = re.compile(r"\S*python\S* -m hvrescue")
_PROG_SAMPLE = "python -m hvrescue python3 -m hvrescue"


@dataclass
class Case:
    name: str
    args: Callable[[Path], list[str | Path]]
    json: bool = True
    rcs: tuple[int, ...] = (0, 1)
    # Outputs to remove before a run (they must not exist).
    outputs: Callable[[Path], list[Path]] = field(default_factory=lambda: lambda _: [])
    # A command run first (in English) to make this one's input.
    setup: Callable[[Path], list[str | Path]] | None = None
    slow: bool = False
    # The report folder a command writes (its report.md and report.html are scanned too).
    report: Callable[[Path], Path] | None = None


def _out(*names: str) -> Callable[[Path], list[Path]]:
    return lambda w: [w / n for n in names]


CASES: list[Case] = [
    Case("info-vhdx", lambda w: ["info", w / "d/vhdx-log-replay.vhdx"]),
    Case("info-vhd", lambda w: ["info", w / "d/dynamic.vhd"], slow=True),
    Case("info-not-a-disk", lambda w: ["info", w / "e/events_text_ja.txt"], rcs=(2,), slow=True),
    Case("chain-orphan", lambda w: ["chain", w / "d/differencing.avhdx"]),
    Case("chain-vhd", lambda w: ["chain", w / "d/image-differential.vhd"], slow=True),
    Case("check-replay", lambda w: ["check", w / "d/vhdx-log-replay.vhdx"]),
    Case("check-many", lambda w: ["check", *sorted((w / "d").iterdir())], slow=True),
    Case("hash", lambda w: ["hash", w / "d/fixed.vhdx"], slow=True),
    Case("hash-orphan", lambda w: ["hash", w / "d/fat-differential.vhd"], rcs=(1, 2), slow=True),
    Case("facts", lambda w: ["facts", w / "e"]),
    Case("explain-finding", lambda w: ["explain", "vhdx.log.replay-needed"]),
    Case("explain-hresult", lambda w: ["explain", "0x8007000e"]),
    Case("explain-io", lambda w: ["explain", "io.read-error"], slow=True),
    Case("explain-decimal", lambda w: ["explain", "-2147024882"], slow=True),
    Case("explain-vhd", lambda w: ["explain", "0xC03A000D"], slow=True),
    Case("explain-ntstatus", lambda w: ["explain", "0xC0370001"], slow=True),
    Case("explain-event", lambda w: ["explain", "VSS/8193"], slow=True),
    Case("explain-stop", lambda w: ["explain", "0x7B"], slow=True),
    Case("explain-unknown", lambda w: ["explain", "nonsense"], rcs=(2,), slow=True),
    Case("inventory", lambda w: ["inventory", w / "d"], slow=True),
    Case(
        "triage",
        lambda w: ["triage", w / "e", w / "d/differencing.avhdx", "--out", w / "report"],
        outputs=_out("report"),
        report=lambda w: w / "report",
    ),
    Case(
        "preserve",
        lambda w: ["preserve", w / "d/image-differential.vhd", w / "kept", "--allow-same-storage"],
        outputs=_out("kept"),
        slow=True,
    ),
    Case(
        "verify",
        lambda w: ["verify", w / "kept2"],
        setup=lambda w: [
            "preserve",
            w / "d/image-differential.vhd",
            w / "kept2",
            "--allow-same-storage",
        ],
        outputs=_out("kept2"),
        slow=True,
    ),
    Case(
        "merge",
        lambda w: ["merge", w / "d/image-differential.vhd", w / "merged.vhdx"],
        outputs=_out("merged.vhdx"),
        slow=True,
    ),
    Case(
        "replay-log",
        lambda w: ["replay-log", w / "d/vhdx-log-replay.vhdx", w / "replayed.vhdx"],
        outputs=_out("replayed.vhdx"),
        slow=True,
    ),
    Case(
        "repair",
        lambda w: ["repair", w / "d/vhdx-log-replay.vhdx", w / "repaired.vhdx"],
        outputs=_out("repaired.vhdx"),
        slow=True,
    ),
    Case(
        "reparent",
        lambda w: [
            "reparent",
            w / "d/image-differential.vhd",
            "--parent",
            w / "d/image.vhd",
            w / "reparented.vhd",
        ],
        outputs=_out("reparented.vhd"),
        slow=True,
    ),
    Case(
        "salvage",
        lambda w: ["salvage", w / "d/dynamic.vhd", w / "salvaged.raw", "--map", w / "s.map"],
        outputs=_out("salvaged.raw", "s.map"),
        slow=True,
    ),
    Case("ls", lambda w: ["ls", w / "d/ext2.vhd"]),
    Case("ls-folder", lambda w: ["ls", w / "d/ext2.vhd", "1:/"], slow=True),
    Case(
        "extract",
        lambda w: ["extract", w / "d/ext2.vhd", "1:/", "--to", w / "extracted"],
        outputs=_out("extracted"),
        slow=True,
    ),
]
# Help and usage errors run in-process (click's own words, fast).
HELP_ARGS: list[list[str]] = [
    ["--help"],
    ["--version"],
    ["check"],
    ["check", "--deeep", "x.vhdx"],
    ["chekc"],
    ["merge", "--format", "qcow", "a", "b"],
    ["preserve", "--jobs", "0", "a", "b"],
]

DISKS = {
    "dissect-hypervisor": ["differencing.avhdx", "dynamic.vhd", "dynamic.vhdx", "fixed.vhdx"],
    "discutils": ["vhdx-log-replay.vhdx"],
    "dfvfs": ["image.vhd", "image-differential.vhd", "ext2.vhd", "fat-differential.vhd"],
}
EVIDENCE = [
    FIX / "commands/vssadmin_writers_ja.txt",
    FIX / "commands/tasklist_svc_ja.txt",
    FIX / "commands/events_text_ja.txt",
    FIX / "incidents/bugcheck_1001_ja.csv",
    FIX / "incidents/kernel_power_41.xml",
]


@pytest.fixture(scope="module")
def work(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """d/: corpus disks (a VHD chain, an orphan, a dirty log, ext2), e/: Japanese command
    outputs and events, an EVTX log."""
    root = tmp_path_factory.mktemp("ja-ui")
    (root / "d").mkdir()
    (root / "e").mkdir()
    for folder, names in DISKS.items():
        for name in names:
            src = corpus_dir / folder / name if (corpus_dir / folder / name).exists() else None
            shutil.copyfile(src or CORPUS / folder / name, root / "d" / name)
    for src in EVIDENCE:
        shutil.copyfile(src, root / "e" / src.name)
    shutil.copyfile(CORPUS / "evtx/omerbenamram-evtx/2-vss_7-System.evtx", root / "e/System.evtx")
    return root


def _inputs(work: Path) -> list[Path]:
    return [p for sub in ("d", "e") for p in (work / sub).iterdir()]


# Keys whose values are words the program chooses (how a parent was found, a state, a cause):
# interface words when printed, so never data.
CHOSEN = {"found_via", "status", "state", "severity", "cause", "scheme", "role", "reason"}
# Subtrees that are data as a whole: both languages side by side, facts as read, event texts.
DATA_TREES = {"en", "attributes", "properties", "timeline", "facts"}


def _data_words(value: Any, key: str = "", inside: bool = False) -> set[str]:
    """What a JSON answer holds as data: its keys (field names, shown by `info`) and the words
    of its values, except the texts a person reads and the words the program chooses."""
    if isinstance(value, dict):
        words = {str(k).lower() for k in value}
        for k, v in value.items():
            words |= _data_words(v, str(k), inside or k in DATA_TREES)
        return words
    if isinstance(value, list):
        return {w for v in value for w in _data_words(v, key, inside)}
    if isinstance(value, str) and key not in CHOSEN and (inside or not _human(key)):
        return {w.lower() for w in WORD.findall(value)}
    return set()


def _human(key: str) -> bool:
    return key in HUMAN_KEYS or key.endswith(HUMAN_SUFFIXES)


def _human_texts(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in DATA_TREES:
                continue
            if k == "command" and isinstance(v, str):
                # A command is copied as it is; only what it asks the reader to fill in is read.
                yield " ".join(PLACEHOLDER.findall(v))
            else:
                yield from _human_texts(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _human_texts(v, key)
    elif isinstance(value, str) and _human(key):
        yield value


def _commands(value: Any) -> Iterator[str]:
    """The commands a report asks the reader to run: copied as they are, not translated."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "command" and isinstance(v, str):
                yield v
            else:
                yield from _commands(v)
    elif isinstance(value, list):
        for v in value:
            yield from _commands(v)


def english_words(text: str, data: set[str], strip: list[str]) -> list[str]:
    """The ASCII words of ``text`` that are interface English: not data, not an identifier,
    not an allowed term. ``strip``: paths (removed wherever they occur) and values given on the
    command line (ignored as whole tokens)."""
    for s in sorted(strip, key=len, reverse=True):
        if "/" in s or "\\" in s:
            text = text.replace(s, " ")
    given = {s.lower() for s in strip}
    found = []
    for token in re.split(r"[\s\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef\u2500-\u257f]+", text):
        token = token.strip("()[]「」『』<>,;\"'?*`…·→←")
        # Identifiers, paths, numbers, codes, options (--deep, -h), what the user typed.
        if not token or IDENTIFIER.search(token) or token.startswith(("-", "!")):
            continue
        if KEBAB.match(token) or CMDLET.match(token) or token.lower() in given:
            continue
        if token.lower() in ALLOWED:
            continue
        for word in WORD.findall(token):
            low = word.lower()
            if len(word) < 3 or low in ALLOWED or low in data or word.isupper():
                continue
            found.append(word)
    return found


def _run(case: Case, work: Path, as_json: bool) -> Result:
    for out in case.outputs(work):
        if out.is_dir():
            shutil.rmtree(out)
        elif out.exists():
            out.unlink()
    if case.setup is not None:
        assert run_cli(*case.setup(work), evidence=_inputs(work)).rc in (0, 1)
    args = ["--lang", "ja", *case.args(work), *(["--json"] if as_json else [])]
    return run_cli(*args, evidence=_inputs(work))


def _params(cases: list[Case]) -> list[Any]:
    return [pytest.param(c, id=c.name, marks=[pytest.mark.slow] if c.slow else []) for c in cases]


@pytest.mark.parametrize("case", _params(CASES))
def test_japanese_output_has_no_english_interface_words(case: Case, work: Path):
    data: set[str] = set()
    commands: list[str] = []
    # The paths and values given on the command line are data.
    strip = [str(work), *map(str, case.args(work))]
    if case.json:
        r = _run(case, work, as_json=True)
        assert r.rc in case.rcs, r.stdout + r.stderr
        answer = json.loads(r.stdout) if r.stdout.strip().startswith(("{", "[")) else {}
        data = _data_words(answer)
        commands = sorted(_commands(answer), key=len, reverse=True)
        texts = list(_human_texts(answer))
        bad = [w for t in texts for w in english_words(t, data, strip)]
        left = [t for t in texts if PLACEHOLDER_LEFT.search(t)]
        assert not left, f"unfilled template in JSON: {left}"
        assert not bad, f"English in the JSON's human fields: {sorted(set(bad))}\n{texts}"
    r = _run(case, work, as_json=False)
    assert r.rc in case.rcs, r.stdout + r.stderr
    output = r.stdout + "\n" + r.stderr
    for command in commands:
        # In the text output too, only what a command asks the reader to fill in is read.
        output = output.replace(command, " ".join(PLACEHOLDER.findall(command)))
    assert not PLACEHOLDER_LEFT.search(output), output
    bad = english_words(output, data, strip)
    assert not bad, f"English interface words: {sorted(set(bad))}\n{output}"
    if case.report is not None:
        _scan_report(case.report(work), strip)


def _scan_report(folder: Path, strip: list[str]) -> None:
    """report.md and report.html: their text, less the commands to copy, is Japanese."""
    answer = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    data = _data_words(answer)
    commands = sorted(_commands(answer), key=len, reverse=True)
    md = (folder / "report.md").read_text(encoding="utf-8")
    page = (folder / "report.html").read_text(encoding="utf-8")
    page = re.sub(r"<(style|script)\b.*?</\1>", " ", page, flags=re.S)
    page = html.unescape(re.sub(r"<[^>]+>", " ", page))
    for name, text in (("report.md", md), ("report.html", page)):
        for command in commands:
            text = text.replace(command, " ".join(PLACEHOLDER.findall(command)))
        assert not PLACEHOLDER_LEFT.search(text), name
        bad = english_words(text, data, strip)
        assert not bad, f"English interface words in {name}: {sorted(set(bad))}"


def _help_args() -> list[list[str]]:
    from hvrescue.cli.main import cli

    return [*HELP_ARGS, *([name, "--help"] for name in sorted(cli.commands))]


@pytest.mark.parametrize("args", _help_args(), ids=lambda a: " ".join(a))
@pytest.mark.parametrize("how", ["option", "environment"])
def test_help_and_click_messages_are_japanese(args: list[str], how: str):
    """--help of every command and click's own words (usage, errors), by --lang or by
    HVRESCUE_LANG."""
    from click.testing import CliRunner

    from hvrescue.cli.main import cli

    argv = ["--lang", "ja", *args] if how == "option" else args
    env = {"HVRESCUE_LANG": "ja"} if how == "environment" else {"HVRESCUE_LANG": ""}
    result = CliRunner().invoke(cli, argv, prog_name="hvrescue", env={**env, "LANG": "C"})
    output = result.output
    assert result.exit_code in (0, 2), output
    assert re.search(r"[\u3040-\u30ff]", output), output  # kana: it is Japanese
    bad = english_words(output, set(), args)
    assert not bad, f"English interface words: {sorted(set(bad))}\n{output}"


def test_the_scan_finds_english_interface_words():
    """The scan itself: English words fail it; paths, codes, numbers and data pass."""
    assert english_words("[error] chain.parent.missing found by locator", set(), []) == [
        "error",
        "found",
        "locator",
    ]
    text = "[エラー] chain.parent.missing /x/y.vhdx @ 0x10000 {b298d413-f67e} 12 MiB VHDX"
    assert english_words(text, set(), []) == []
    assert english_words("名前: System Writer", {"system", "writer"}, []) == []
    assert english_words("windbg -z <copy of the dump>", set(), []) == ["copy", "the", "dump"]
    assert english_words("--deep  VHDX の hvrescue check", set(), []) == []
