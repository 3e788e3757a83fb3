"""Course models and their data: ``edgeport.training``."""
