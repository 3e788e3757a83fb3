"""Proof and measurement: `edgeport verify`, `edgeport bench`, `edgeport report` (imports nothing heavy)."""
