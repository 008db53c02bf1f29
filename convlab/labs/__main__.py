"""``python -m convlab.labs``: record a lab's reference runs or time its full mode."""

import sys

from convlab.labs.record import main

sys.exit(main())
