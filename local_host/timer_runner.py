"""Timer triggers: fire on an NCRONTAB schedule (six fields, seconds first) or a TimeSpan interval.

Like the host: schedules are evaluated in UTC; invocations of one timer function never overlap;
if an occurrence passed while the previous invocation was still running, the function runs once
right away with `past_due=True` and then resumes the schedule (missed occurrences are not
replayed one by one). `runOnStartup` fires once when the host starts. Unlike Azure there is no
schedule monitor in storage, so occurrences missed while the local host was not running are not
detected.
"""
from __future__ import annotations

import logging
import re
import threading
from datetime import UTC, datetime, timedelta

from azure.functions.timer import TimerRequest
from croniter import croniter

from .app_loader import AppLoadError, FunctionSpec
from .host_config import parse_timespan
from .invocation import Invoker

logger = logging.getLogger("local_host.timers")


class Schedule:
    def __init__(self, expression: str) -> None:
        self.expression = expression.strip()
        self.interval: timedelta | None = None
        if re.fullmatch(r"(\d+\.)?\d{1,2}:\d{1,2}:\d{1,2}", self.expression):
            self.interval = parse_timespan(self.expression, timedelta(0))
            if self.interval <= timedelta(0):
                raise AppLoadError(f"timer schedule {expression!r}: interval must be positive")
            return
        if len(self.expression.split()) != 6:
            raise AppLoadError(
                f"timer schedule {expression!r}: NCRONTAB needs six fields "
                "(second minute hour day month day-of-week)"
            )
        if not croniter.is_valid(self.expression, second_at_beginning=True):
            raise AppLoadError(f"timer schedule {expression!r} is not a valid NCRONTAB expression")

    def next_after(self, moment: datetime) -> datetime:
        if self.interval is not None:
            return moment + self.interval
        return croniter(self.expression, moment, second_at_beginning=True).get_next(datetime)


def _now() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    def __init__(self, spec: FunctionSpec, invoker: Invoker) -> None:
        self.spec = spec
        self.invoker = invoker
        self.schedule = Schedule(spec.trigger["schedule"])
        self.run_on_startup = bool(spec.trigger.get("runOnStartup", False))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"timer-{spec.name}", daemon=True)

    @property
    def description(self) -> str:
        return f"timerTrigger: {self.schedule.expression}"

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Stop scheduling; a running invocation may finish within `timeout`."""
        self._stop.set()
        self._thread.join(timeout)

    def _fire(self, scheduled: datetime, last: datetime | None, next_due: datetime, past_due: bool) -> None:
        # func.TimerRequest is the abstract base; the worker builds azure.functions.timer.TimerRequest.
        timer = TimerRequest(
            past_due=past_due,
            schedule_status={
                "Last": (last or scheduled).isoformat(),
                "Next": next_due.isoformat(),
                "LastUpdated": _now().isoformat(),
            },
            schedule={"AdjustForDST": True},
        )
        try:
            self.invoker.invoke(self.spec, timer, f"Timer fired at {_now().isoformat()}")
        except Exception:
            pass  # logged by the invoker; a timer is not retried, the next occurrence runs as usual

    def _run(self) -> None:
        last: datetime | None = None
        if self.run_on_startup and not self._stop.is_set():
            now = _now()
            self._fire(now, None, self.schedule.next_after(now), past_due=False)
            last = now
        due = self.schedule.next_after(_now())
        while not self._stop.wait(max(0.0, (due - _now()).total_seconds())):
            now = _now()
            if now < due:
                continue  # woke early (clock granularity); wait the rest
            # Late by more than a tolerance: the previous invocation overran this occurrence.
            past_due = now - due > timedelta(seconds=1)
            following = self.schedule.next_after(due)
            self._fire(due, last, following, past_due)
            last = due
            if past_due and following <= _now():
                # This was the one catch-up run; skip the rest of the missed occurrences.
                following = self.schedule.next_after(_now())
            due = following
