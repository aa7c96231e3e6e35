"""Pieces of a self-contained HTML report: one file, no server, no network.

`html` (page, tables, sections), `charts` (curves as inline SVG), `volumes` (3D volumes as
compressed arrays drawn on canvases with a slice slider per plane). Nothing here reads a
run folder: `core.run.report` does, and hands plain values and arrays to these builders.
"""
