import sys

from edgeport.benchmarks.fuzz.run import main
from edgeport.native_log import native_to_log

with native_to_log("fuzz"):  # TensorFlow's, absl's and oneDNN's lines: to the log, as in every command
    code = main()
sys.exit(code)
