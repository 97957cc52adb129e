"""Timer-triggered functions: the sample's every-second NCRONTAB schedule fires on time."""
from __future__ import annotations

from .conftest import read_records, wait_for


def test_timer_fires_every_second(sample_host):
    fired = wait_for(lambda: (r := read_records(sample_host.output_dir / "timer.log")) and len(r) >= 3 and r,
                     timeout=10, message="three timer invocations")
    gaps = [b["at"] - a["at"] for a, b in zip(fired, fired[1:])]
    assert all(0.5 < gap < 1.5 for gap in gaps[:2]), gaps
    assert fired[0]["past_due"] is False
    assert "every_second: timerTrigger: * * * * * *" in sample_host.logs()
    assert "Executed 'Functions.every_second' (Succeeded" in sample_host.logs()
