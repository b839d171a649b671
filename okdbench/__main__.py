import sys

from okdbench.cli import main

sys.exit(main())
