import sys

from tfvrec.cli import main

sys.exit(main())
