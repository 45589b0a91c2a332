"""`systeminfo`, English and Japanese: the host, its OS build, boot time, Hyper-V requirements,
and one hotfix fact per installed update."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
from hvrescue.logs.commands.repost import cleaned
from hvrescue.logs.events import parse_local_time
from hvrescue.logs.textutil import Text, norm_key

KEYS = {
    "host name": "host_name",
    "os name": "os_name",
    "os version": "os_version",
    "os manufacturer": "os_manufacturer",
    "os configuration": "os_configuration",
    "os build type": "os_build_type",
    "registered owner": "registered_owner",
    "original install date": "original_install_date",
    "system boot time": "system_boot_time",
    "system manufacturer": "system_manufacturer",
    "system model": "system_model",
    "system type": "system_type",
    "processor(s)": "processors",
    "bios version": "bios_version",
    "windows directory": "windows_directory",
    "time zone": "time_zone",
    "total physical memory": "total_physical_memory",
    "domain": "domain",
    "hotfix(s)": "hotfixes",
    "network card(s)": "network_cards",
    "hyper-v requirements": "hyperv_requirements",
    "system locale": "system_locale",
    "ホスト名": "host_name",
    "os 名": "os_name",
    "os バージョン": "os_version",
    "os 製造元": "os_manufacturer",
    "os 構成": "os_configuration",
    "os ビルドの種類": "os_build_type",
    "登録されている所有者": "registered_owner",
    "最初のインストール日付": "original_install_date",
    "システム起動時間": "system_boot_time",
    "システム製造元": "system_manufacturer",
    "システム モデル": "system_model",
    "システムの種類": "system_type",
    "プロセッサ": "processors",
    "bios バージョン": "bios_version",
    "windows ディレクトリ": "windows_directory",
    "タイム ゾーン": "time_zone",
    "物理メモリの合計": "total_physical_memory",
    "ドメイン": "domain",
    "ホットフィックス": "hotfixes",
    "ネットワーク カード": "network_cards",
    "hyper-v の要件": "hyperv_requirements",
    "システム ロケール": "system_locale",
}
# The Hyper-V requirements as systeminfo prints them (English, Japanese, German, French).
REQUIREMENTS = (
    (
        "vm_monitor_mode_extensions",
        r"VM Monitor Mode Extensions|VM モニター モード拡張機能|VM-Überwachungsmodus-Erweiterungen"
        r"|Extensions de mode du moniteur d.ordinateur virtuel",
    ),
    (
        "virtualization_firmware_enabled",
        r"Virtualization Enabled In Firmware|ファームウェアで仮想化が有効(?:になっています)?"
        r"|In Firmware aktivierte Virtualisierung|Virtualisation activée dans le microprogramme",
    ),
    (
        "slat",
        r"Second Level Address Translation|第\s?2\s?レベルのアドレス変換"
        r"|Adressübersetzung der zweiten Ebene|Traduction d.adresse de second niveau",
    ),
    (
        "dep_available",
        r"Data Execution Prevention Available|データ実行防止が(?:使用可能|使用できます)"
        r"|Datenausführungsverhinderung verfügbar|Prévention de l.exécution des données disponible",
    ),
)
ANSWER = r"\s*[:：]\s*(?P<answer>Yes|No|はい|いいえ|Ja|Nein|Oui|Non)\b"
REQUIREMENT_RES = tuple(
    (key, re.compile(rf"(?:{label}){ANSWER}", re.I)) for key, label in REQUIREMENTS
)
YES = {"yes", "はい", "ja", "oui"}
DETECTED = re.compile(
    r"hypervisor has been detected|ハイパーバイザーが検出されました|Hypervisor erkannt"
    r"|hyperviseur a été détecté",
    re.I,
)
# Keys that, two together, say a partial output is systeminfo's (not any "Domain:" line).
DISTINCTIVE = {
    "os_name",
    "os_version",
    "os_build_type",
    "original_install_date",
    "system_boot_time",
    "system_model",
    "system_type",
    "bios_version",
    "total_physical_memory",
    "hyperv_requirements",
}
PARTIAL_CONFIDENCE = 0.9
KEY = re.compile(r"^(?P<key>[^\s:][^:]{0,60}?):")  # just the label: cheap on any line
LINE = re.compile(r"^(?P<key>[^\s:][^:]*?):\s*(?P<value>.*?)\s*$")
ITEM = re.compile(r"^\s+\[(\d+)\]:\s*(?P<value>.*?)\s*$")
KB = re.compile(r"\bKB\d{6,7}\b", re.I)


def hyperv_flags(text: str) -> dict[str, bool | None]:
    """The Hyper-V requirements in ``text`` as booleans (None: not shown). When a hypervisor
    runs, systeminfo shows only that sentence; when it does not, the four requirements."""
    flags: dict[str, bool | None] = {}
    for key, pattern in REQUIREMENT_RES:
        m = pattern.search(text)
        flags[key] = None if m is None else m.group("answer").lower() in YES
    detected = bool(DETECTED.search(text))
    shown = any(v is not None for v in flags.values())
    flags["hypervisor_detected"] = True if detected else (False if shown else None)
    return flags


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = cleaned(text)
    covered: list[tuple[int, int]] = []
    i = 0
    while i < len(lines):
        k = KEY.match(lines[i])
        if not (k and KEYS.get(norm_key(k.group("key"))) == "host_name"):
            i += 1
            continue
        start = i
        info: dict[str, Any] = {}
        other: dict[str, str] = {}
        current: str | None = None
        while i < len(lines):
            line = lines[i]
            if not line.strip() or (i > start and text.is_prompt(i)):
                break
            if line[0].isspace():
                if current is not None:
                    item = ITEM.match(line)
                    info.setdefault(current + "_items", []).append(
                        item.group("value") if item else line.strip()
                    )
            else:
                m = LINE.match(line)
                if m is None:
                    break
                current = KEYS.get(norm_key(m.group("key")))
                if current is not None:
                    info[current] = m.group("value")
                else:
                    other[m.group("key").strip()] = m.group("value")
            i += 1
        info["other"] = other
        version = info.get("os_version", "")
        build = re.search(r"(\d+)\.(\d+)\.(\d+)", version)
        info["os_build"] = int(build.group(3)) if build else None
        info["system_boot_time_local"] = parse_local_time(
            info.get("system_boot_time", "").replace(",", "")
        )
        hyperv = " ".join(
            [info.get("hyperv_requirements", ""), *info.get("hyperv_requirements_items", [])]
        )
        info.update(hyperv_flags(hyperv))
        covered.append((start, i))
        facts.append(Fact("system_info", info, Provenance(text.path, text.locator(start))))
        for item in info.get("hotfixes_items", []):
            kb = KB.search(item)
            if kb:
                facts.append(
                    Fact(
                        "hotfix",
                        {
                            "kb": kb.group(0).upper(),
                            "description": None,
                            "installed_on": None,
                            "installed_on_local": None,
                            "installed_by": None,
                            "computer": info.get("host_name"),
                            "source": "systeminfo",
                        },
                        Provenance(text.path, text.locator(start)),
                    )
                )
    facts.extend(_partial(text, lines, covered))
    return facts


def _recognised(line: str) -> str | None:
    """What a line of a partial systeminfo output is: a known key, a requirement, or None."""
    m = KEY.match(line)
    key = KEYS.get(norm_key(m.group("key"))) if m else None
    # A requirement alone is systeminfo's only as its indented item or after its label
    # (msinfo32's rows say the same at the start of a line: those are msinfo.py's).
    if (key == "hyperv_requirements" or line[:1].isspace()) and (
        DETECTED.search(line) or any(p.search(line) for _k, p in REQUIREMENT_RES)
    ):
        return "hyperv"
    return key


def _partial(text: Text, lines: list[str], covered: list[tuple[int, int]]) -> list[Fact]:
    """Facts of systeminfo lines without their Host Name line (``systeminfo | findstr ...``,
    a block copied alone): only what they show; the rest stays unknown."""
    inside: set[int] = set()
    for a, b in covered:
        inside.update(range(a, b))
    facts: list[Fact] = []
    i = 0
    while i < len(lines):
        if i in inside or _recognised(lines[i]) is None:
            i += 1
            continue
        start = i
        info: dict[str, Any] = {}
        hyperv: list[str] = []
        while i < len(lines) and i not in inside and lines[i].strip():
            what = _recognised(lines[i])
            if what is None:
                break
            m = LINE.match(lines[i])
            key = KEYS.get(norm_key(m.group("key"))) if m else None
            if m is not None and key is not None:
                info[key] = m.group("value")
                if key == "hyperv_requirements":
                    hyperv.append(m.group("value"))
            elif what == "hyperv":
                hyperv.append(lines[i].strip())
            i += 1
        keys = set(info) & DISTINCTIVE
        if not hyperv and len(keys) < 2:
            continue
        if hyperv:
            info["hyperv_requirements"] = " ".join(hyperv)
        build = re.search(r"(\d+)\.(\d+)\.(\d+)", info.get("os_version", ""))
        info["os_build"] = int(build.group(3)) if build else None
        info.update(hyperv_flags(" ".join(hyperv)) if hyperv else {})
        info.update({"partial": True, "source": "systeminfo", "confidence": PARTIAL_CONFIDENCE})
        facts.append(Fact("system_info", info, Provenance(text.path, text.locator(start))))
    return facts
