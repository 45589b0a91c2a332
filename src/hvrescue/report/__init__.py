"""Rendering for people and machines; message catalogues in en and ja."""
