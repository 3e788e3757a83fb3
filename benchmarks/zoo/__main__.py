import sys

from edgeport.benchmarks.zoo.run import main

sys.exit(main())
