"""The index of bulk assignment jobs not finished yet (table OpenJobs; services/assignment_job.py).

A row is added before the job's partition commit and removed after the job finished, so every job
that could be unfinished is listed (a row whose job never committed is removed by the timer later).
The resume timer reads this small table instead of scanning every subscription's partition.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters import keys
from adapters.table_storage import OPEN_JOBS, TableStore


@dataclass(frozen=True)
class OpenJob:
    subscription_id: str
    job_id: str
    listed_at: datetime


class JobIndex:
    def __init__(self, store: TableStore) -> None:
        self.store = store

    def add(self, subscription_id: str, job_id: str, at: datetime) -> None:
        self.store.upsert(OPEN_JOBS, {"PartitionKey": keys.encode(subscription_id), "RowKey": keys.encode(job_id),
                                      "SubscriptionId": subscription_id, "JobId": job_id, "ListedAt": at})

    def remove(self, subscription_id: str, job_id: str) -> None:
        self.store.delete(OPEN_JOBS, keys.encode(subscription_id), keys.encode(job_id))

    def entries(self) -> Iterator[OpenJob]:
        for row in self.store.query(OPEN_JOBS):
            at = row.get("ListedAt")
            yield OpenJob(row.get("SubscriptionId") or keys.decode(row["PartitionKey"]),
                          row.get("JobId") or keys.decode(row["RowKey"]),
                          at if isinstance(at, datetime) else datetime.now(UTC))
