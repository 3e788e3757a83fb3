"""Seeded fuzzing of everything edgeport reads: model files, manifests and bundles (`make fuzz`)."""
