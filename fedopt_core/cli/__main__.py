import sys

from fedopt_core.cli import main

sys.exit(main())
