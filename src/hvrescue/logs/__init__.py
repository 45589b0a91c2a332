"""Evidence to facts: event logs (EVTX, XML, CSV, copied text) and command outputs (EN/JA)."""
