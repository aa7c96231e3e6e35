"""Configs: load and merge YAML, check it against the classes it names, build them (the lowest core layer)."""
