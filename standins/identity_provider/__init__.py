"""A local identity provider shaped like Microsoft Entra ID, for development and tests only.

Run it with `python -m standins.identity_provider serve`; from tests use `launch()` (subprocess) or
`start_in_thread()`, and `issue_token()` to mint access tokens without a browser.
"""

from .client import issue_token
from .launcher import LaunchedProvider, launch
from .server import RunningProvider, start_in_thread

__all__ = ["issue_token", "launch", "LaunchedProvider", "start_in_thread", "RunningProvider"]
