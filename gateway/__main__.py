"""`python -m gateway upload FILE --target 12+ [--title T] [--watch]`: see `gateway.terminal`."""
import sys

from .terminal import main

sys.exit(main())
