"""Diagnosis: rules (data) matched against facts, the triage command's core, and reports."""
