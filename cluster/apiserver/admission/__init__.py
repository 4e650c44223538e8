"""Admission: the plugins a write passes between decoding and storage (see ``chain`` for the order
and why, ``interfaces`` for what a plugin sees and implements)."""
