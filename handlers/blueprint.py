"""The blueprint each handler module registers its functions on, under a typed constructor.

azure-functions ships type information (py.typed) and its decorators (`route`, `queue_trigger`,
`timer_trigger`...) are annotated, but `Blueprint` inherits `DecoratorApi.__init__(self, *args, **kwargs)`,
which is not: strict mypy reports every `func.Blueprint()` as a call to an untyped function. Seen
through `_Blueprint` (mypy checks the assignment: the class accepts a call without arguments), the
call is typed; nothing else differs.
"""

from __future__ import annotations

from collections.abc import Callable

import azure.functions as func

_Blueprint: Callable[[], func.Blueprint] = func.Blueprint


def new_blueprint() -> func.Blueprint:
    return _Blueprint()
