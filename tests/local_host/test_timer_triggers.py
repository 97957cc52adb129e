"""Timer-triggered functions: the sample's every-second NCRONTAB schedule fires on time."""
from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from .conftest import read_records, wait_for


def test_timer_fires_every_second(sample_host):
    fired = wait_for(lambda: (r := read_records(sample_host.output_dir / "timer.log")) and len(r) >= 3 and r,
                     timeout=10, message="three timer invocations")
    # The schedule, not the machine's load, decides: consecutive occurrences are exactly a second
    # apart, and none ran before its occurrence (each ran at or after `next` minus one second).
    occurrences = [datetime.fromisoformat(r["next"]) - timedelta(seconds=1) for r in fired]
    assert [(b - a).total_seconds() for a, b in pairwise(occurrences[:3])] == [1.0, 1.0], occurrences
    assert all(r["at"] >= o.timestamp() for r, o in zip(fired, occurrences, strict=True)), (fired, occurrences)
    assert fired[0]["past_due"] is False
    assert "every_second: timerTrigger: * * * * * *" in sample_host.logs()
    assert "Executed 'Functions.every_second' (Succeeded" in sample_host.logs()
