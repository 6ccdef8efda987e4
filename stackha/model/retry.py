"""Which failures of a version are tried again, and when: pure, no I/O.

A version fails on a node for one of two kinds of reason. Most say something about the
files (they do not validate, the service refused them, a health check failed after the
reload): tried again they fail again, so the node refuses the version until a new one is
published. A few say only that the service could not be asked: MyCat 1.6 opens its ports
before its start-up is done and sends no greeting while its main thread waits for the
backends (60 s in the lab when its MariaDB was not up yet), and it leaves ``reload @@config``
unanswered while all its business threads are taken (its global-table check parks one for
ten minutes per DDL). Those are tried again, a few times and further apart each time, before
the version is refused for good.
"""

from __future__ import annotations

from dataclasses import dataclass


class Retryable(str):
    """A failure's reason that names a passing condition of the service, not of the files.

    A plain ``str`` everywhere a reason goes (logs, status, joined into longer reasons);
    only the code that decides whether to try again looks at its type."""

    __slots__ = ()


# Seconds before each new try: doubling from 5 s, 315 s in all. A MyCat that waited 60 s
# for its backends and took 98 s to say "startup successfully" (lab start-up on this 2-CPU
# VM, mycat.log) is answering by the fourth try.
RETRY_DELAYS: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 80.0, 160.0)


@dataclass(frozen=True)
class RetryPlan:
    """Version ``number`` is tried again at ``due`` (monotonic seconds); ``attempt`` counts
    the tries after the first, from 1."""

    number: int
    attempt: int
    due: float
    delay: float


def plan_retry(number: int, previous: RetryPlan | None, now: float,
               delays: tuple[float, ...] = RETRY_DELAYS) -> RetryPlan | None:
    """The next try of ``number`` after a retryable failure at ``now``, or None when its tries
    are used up (the version is then refused). ``previous`` is the plan that led to this
    failure, if it was for the same version."""
    attempt = previous.attempt + 1 if previous is not None and previous.number == number else 1
    if attempt > len(delays):
        return None
    delay = delays[attempt - 1]
    return RetryPlan(number, attempt, now + delay, delay)
