"""``python -m understanding_rl_vision`` is the same as the ``understanding-rl-vision`` command."""

import sys

from .cli import main

sys.exit(main())
