"""`audit`: prevention checks of Hyper-V storage trees for the monitoring people already run
(old checkpoints, deep chains, merge headroom, orphaned and leftover files, disk ACLs), with a
Prometheus textfile-collector output. See docs/audit.md."""

from hvrescue.audit.run import AuditOptions, AuditResult, run_audit

__all__ = ["AuditOptions", "AuditResult", "run_audit"]
