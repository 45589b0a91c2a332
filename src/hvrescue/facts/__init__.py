"""Facts: small typed records with provenance, the one currency of diagnosis."""

from hvrescue.facts.model import Fact, Provenance

__all__ = ["Fact", "Provenance"]
