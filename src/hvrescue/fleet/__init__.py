"""`fleet`: many hosts' bundles triaged in parallel into one summary.

>>> from hvrescue.fleet import find_bundles, run_fleet
>>> summary = run_fleet(find_bundles(["/hunts/hvrescue"]), "en", jobs=2)
>>> summary.counts()["problems"], [d["id"] for d in summary.diagnoses()]

Each bundle (a zip or a folder, one host) is triaged exactly as `triage` would triage it
(``hvrescue.diagnose.triage.run_triage``), in its own worker process under the same memory
budget (``--max-memory``); a bundle that cannot be read, or whose worker fails, is a failed
host with its reason and never stops the others. The summary (``FleetSummary``) lists per host
its verdict, diagnoses and counts, per diagnosis the hosts that have it, and the hosts whose
evidence was not read; ``hvrescue.fleet.html`` renders it as one page.

Imports: ``diagnose``, ``evidence``, ``io``, ``report`` (catalogues, the verdict, the page's
look); nothing imports it but the CLI.
"""

from hvrescue.fleet.bundles import find_bundles, read_manifest
from hvrescue.fleet.run import default_jobs, run_fleet
from hvrescue.fleet.summary import FleetSummary, to_json, write_summary
from hvrescue.fleet.worker import HostResult, triage_bundle

__all__ = [
    "FleetSummary",
    "HostResult",
    "default_jobs",
    "find_bundles",
    "read_manifest",
    "run_fleet",
    "to_json",
    "triage_bundle",
    "write_summary",
]
