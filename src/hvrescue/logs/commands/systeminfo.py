"""`systeminfo`, English and Japanese: the host, its OS build, boot time, Hyper-V requirements,
and one hotfix fact per installed update."""

from __future__ import annotations

import re
from typing import Any

from hvrescue.facts.model import Fact, Provenance
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
LINE = re.compile(r"^(?P<key>[^\s:][^:]*?):\s*(?P<value>.*?)\s*$")
ITEM = re.compile(r"^\s+\[(\d+)\]:\s*(?P<value>.*?)\s*$")
KB = re.compile(r"\bKB\d{6,7}\b", re.I)


def parse(text: Text) -> list[Fact]:
    facts: list[Fact] = []
    lines = text.lines
    i = 0
    while i < len(lines):
        m = LINE.match(lines[i])
        if not (m and KEYS.get(norm_key(m.group("key"))) == "host_name"):
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
        info["hypervisor_detected"] = bool(
            re.search(
                r"hypervisor has been detected|ハイパーバイザーが検出されました", hyperv, re.I
            )
        )
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
    return facts
