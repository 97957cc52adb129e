"""Billing-period arithmetic: Stripe advances monthly periods by calendar month, clamping
the day (Jan 31 -> Feb 28/29), not by a fixed number of seconds."""

import calendar
from datetime import UTC, datetime


def add_interval(timestamp, interval, count=1):
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    if interval == "day":
        return timestamp + 86400 * count
    if interval == "week":
        return timestamp + 7 * 86400 * count
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())
