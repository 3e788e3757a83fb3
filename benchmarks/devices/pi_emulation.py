"""`make pi-emulation` is `make arm-check` now: see :mod:`edgeport.benchmarks.devices.arm_check`.

(The x86-vs-Arm comparison of every .tflite artifact it used to run is subsumed: each board now
installs ``edgeport[pi]`` itself and proves the model's rpi bundle against the Keras outputs.)
"""
from __future__ import annotations

import sys

from edgeport.benchmarks.devices.arm_check import main

if __name__ == "__main__":
    sys.exit(main())
