"""What Event Viewer prints around an event, in the languages we have seen: the labels of the
General tab and of "Copy details as text", the column headers of its list, and the short source
names it shows for manifest providers."""

from __future__ import annotations

import functools
import re
import unicodedata

from hvrescue.evidence.classify import VIEWER_HEADERS

# Label (normalised: lower case, single spaces, no accelerator) -> (field, language).
# English and Japanese as Event Viewer prints them; German and French from localised Windows
# (see tests/fixtures/pasted_events/README.md for where each was seen).
LABELS: dict[str, tuple[str, str]] = {}


def _add(lang: str, field: str, *labels: str) -> None:
    for label in labels:
        LABELS[label] = (field, lang)


_add("en", "channel", "log name")
_add("en", "source", "source")
_add("en", "time", "date", "date and time", "logged")
_add("en", "event_id", "event id")
_add("en", "task", "task category")
_add("en", "level", "level")
_add("en", "keywords", "keywords")
_add("en", "user", "user")
_add("en", "computer", "computer")
_add("en", "message", "description", "message")
_add("en", "opcode", "opcode")
_add("en", "more", "more information")
_add("ja", "channel", "ログの名前")
_add("ja", "source", "ソース")
_add("ja", "time", "日付", "日付と時刻", "ログの日付")
_add("ja", "event_id", "イベント id", "イベントid")
_add("ja", "task", "タスクのカテゴリ")
_add("ja", "level", "レベル")
_add("ja", "keywords", "キーワード")
_add("ja", "user", "ユーザー", "ユーザ")
_add("ja", "computer", "コンピューター", "コンピュータ")
_add("ja", "message", "説明", "メッセージ")
_add("ja", "opcode", "オペコード")
_add("ja", "more", "詳細情報")
_add("ja", "value", "値")
_add("de", "channel", "protokollname")
_add("de", "source", "quelle")
_add("de", "time", "datum", "protokolliert", "datum und uhrzeit")
_add("de", "event_id", "ereignis-id")
_add("de", "task", "aufgabenkategorie", "taskkategorie")
_add("de", "level", "ebene")
_add("de", "keywords", "schlüsselwörter")
_add("de", "user", "benutzer")
_add("de", "message", "beschreibung")
_add("de", "opcode", "vorgangscode")
_add("de", "more", "weitere informationen")
_add("fr", "channel", "nom du journal")
_add("fr", "time", "ouvert le", "date et heure")
_add("fr", "event_id", "id de l'événement", "id de l'evenement", "id d'événement", "id événement")
_add("fr", "task", "catégorie de la tâche", "catégorie de tâche", "catégorie")
_add("fr", "level", "niveau")
_add("fr", "keywords", "mots-clés", "mots clés")
_add("fr", "user", "utilisateur")
_add("fr", "computer", "ordinateur")
_add("fr", "opcode", "code opération", "opération")
_add("fr", "more", "informations complémentaires", "informations")
# Windows Server 2003's Event Viewer, as knowledge base articles still print its events
# ("種類 : エラー / ソース : VolSnap / 分類 : なし / イベント ID : 25 / 日付 / 時刻 / 説明 :").
# Its clock time has a label of its own, kept apart so that it does not replace the date.
_add("en", "level", "type", "event type")
_add("en", "source", "event source")
_add("en", "task", "category", "event category")
_add("en", "clock", "time")
_add("ja", "level", "種類")
_add("ja", "task", "分類")
_add("ja", "clock", "時刻")
# The short form support articles use ("Level: / Date and Time: / Source: / ID: / Message:").
_add("en", "event_id", "id")
# `wevtutil qe <log> /f:text` prints its own, shorter labels, each event indented under
# "Event[n]:".
_add("en", "task", "task")
_add("en", "keywords", "keyword")
_add("en", "user_name", "user name")

# The heading of the event's XML that "Copy details as text" appends (lower case).
XML_LABELS = ("event xml", "イベント xml")

# A label's value may be written after "Label:" or "Label :" (French typography).
LABEL_LINE = re.compile(r"^\s*(?P<key>[^:：\t]{1,32}?)\s*[:：]\s*(?P<value>.*?)\s*$")
# Where a second label may start on the same line (the General tab's two-column grid; a web
# page may have collapsed the spaces between the columns to one).
SECOND_LABEL = re.compile(r"[\t ]+(?=(?P<key>[^\s:：][^\t:：]{0,31}?)\s*[:：])")
_ACCELERATOR = re.compile(r"\s*\(&?[a-z]\)$")
_SPACES = re.compile(r"\s+")


@functools.lru_cache(maxsize=4096)
def norm_label(key: str) -> str:
    """'イベント ID(E)', 'Event &ID', 'ID de l’événement ' -> the key of LABELS."""
    # NFKC: a label retyped or reposted in full width ("ログの名前（Ｍ）", "イベント ＩＤ").
    key = unicodedata.normalize("NFKC", key)
    key = _SPACES.sub(" ", key.strip().lower()).replace("’", "'")
    key = _ACCELERATOR.sub("", key).replace("&", "")
    return key


def label(key: str) -> tuple[str, str] | None:
    return LABELS.get(norm_label(key))


# Column headers of the Event Viewer list as "Save All Events As > Text (tab delimited)" writes
# them and as a copied header row shows them.
ROW_HEADERS: dict[str, str] = {
    **VIEWER_HEADERS,  # English and Japanese, as the CSV export names them
    "ebene": "level",
    "datum und uhrzeit": "time",
    "quelle": "source",
    "ereignis-id": "event_id",
    "aufgabenkategorie": "task",
    "niveau": "level",
    "date et heure": "time",
    "id de l'événement": "event_id",
    "catégorie de la tâche": "task",
}

# Event Viewer shows a manifest provider without its "Microsoft-Windows-" prefix. Only the
# families we know to be named so are given their full name back; any other name stays as
# printed (rules match provider names by regular expression on both forms).
_SHORT_PROVIDER = re.compile(
    r"^(?:Hyper-V-[\w-]+|Kernel-[\w-]+|VHDMP|CAPI2|FailoverClustering|WindowsUpdateClient"
    r"|Winlogon|Wininit|Time-Service|Security-Auditing|GroupPolicy|TaskScheduler"
    r"|WMI-Activity|StorageSpaces-Driver|Storage-Storport|WER-SystemErrorReporting)$"
)


def full_provider(source: str | None) -> str | None:
    if not source:
        return None
    if _SHORT_PROVIDER.match(source):
        return "Microsoft-Windows-" + source
    return source
