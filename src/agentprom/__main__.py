"""Entry point for ``python -m agentprom``."""

import sys

from agentprom.cli import main

sys.exit(main())
