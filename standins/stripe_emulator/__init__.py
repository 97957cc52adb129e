"""A local, stateful Stripe emulator for development and tests.

The production Stripe adapter (the real ``stripe`` SDK) talks to it unchanged once its
base URL points here. See ``README`` section in the project docs and ``__main__.py``.
"""

from .bootstrap import PRICE_LOOKUP_KEY, TIERS, ensure_catalog
from .emulator import Emulator, Settings
from .launcher import EmulatorProcess, launch
from .server import serve

__all__ = ["Emulator", "EmulatorProcess", "PRICE_LOOKUP_KEY", "Settings", "TIERS",
           "ensure_catalog", "launch", "serve"]
