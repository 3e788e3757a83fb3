"""Deployment targets: one module per target (Raspberry Pi, Android, iOS, microcontrollers) that
packages a model's artifacts into what that target's users expect (``edgeport bundle``)."""
