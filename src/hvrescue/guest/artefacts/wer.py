"""Windows Error Reporting: each Report.wer of the report archive and queue (UTF-16 key=value
lines): event type, application, time and the problem signature (BlueScreen reports carry the
bugcheck code)."""

from __future__ import annotations

from hvrescue.guest.artefacts.base import Artefact
from hvrescue.guest.context import GuestContext
from hvrescue.guest.values import filetime_text

WER_FOLDERS = (
    "/ProgramData/Microsoft/Windows/WER/ReportArchive",
    "/ProgramData/Microsoft/Windows/WER/ReportQueue",
)
MAX_WER_REPORTS = 2000
MAX_REPORT = 16 * 1024 * 1024


def parse_report(data: bytes) -> dict[str, str]:
    """The key=value fields of a Report.wer."""
    text = (
        data.decode("utf-16", errors="replace")
        if data[:2] in (b"\xff\xfe", b"\xfe\xff")
        else data.decode("utf-8", errors="replace")
    )
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            fields[key.strip()] = value.strip()
    return fields


def read_wer(ctx: GuestContext) -> None:
    count = 0
    for folder in WER_FOLDERS:
        for report in ctx.listdir(folder):
            if not report.is_dir or count >= MAX_WER_REPORTS:
                continue
            path = report.path + "/Report.wer"
            data = ctx.read(path, MAX_REPORT)
            if not data:
                continue
            count += 1
            fields = parse_report(data)
            sigs = {
                fields.get(f"Sig[{i}].Name", f"sig{i}"): fields.get(f"Sig[{i}].Value", "")
                for i in range(10)
                if f"Sig[{i}].Value" in fields
            }
            ctx.fact(
                "wer_report",
                {
                    "folder": report.name,
                    "event_type": fields.get("EventType"),
                    "friendly_name": fields.get("FriendlyEventName"),
                    "app": fields.get("AppName") or fields.get("AppPath"),
                    "event_time": filetime_text(fields.get("EventTime")),
                    "signature": sigs,
                },
                path,
            )


READER = Artefact(
    name="wer",
    reads=tuple(folder + "/*/Report.wer" for folder in WER_FOLDERS),
    run=read_wer,
)
