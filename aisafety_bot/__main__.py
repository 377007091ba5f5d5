import sys

from aisafety_bot.cli import main

sys.exit(main())
