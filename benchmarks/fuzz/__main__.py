import sys

from edgeport.benchmarks.fuzz.run import main

sys.exit(main())
