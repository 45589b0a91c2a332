"""Look inside a Windows guest offline, read-only, through the chain (log replayed): registry
hives with their transaction logs applied in memory, boot configuration, servicing state,
services and drivers, crash dump headers, event logs and the folder counts that matter. Every
finding becomes a fact with provenance (``<disk>!p<N>:/Windows/...``), so the rules of `triage`
fire from a disk exactly as from collected evidence."""
