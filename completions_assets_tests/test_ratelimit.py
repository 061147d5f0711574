"""The pacer: sliding windows over several limits, pauses, provider budgets, threads."""

import itertools
import threading

import pytest

from completions_assets.http.pacing import ManualClock, Pacer, RateLimit, SystemClock

pytestmark = pytest.mark.unit


def request_times(pacer: Pacer, clock: ManualClock, n: int) -> list[float]:
    times = []
    for _ in range(n):
        pacer.acquire().release()
        times.append(clock.monotonic())
    return times


def max_in_window(times: list[float], seconds: float) -> int:
    return max(sum(1 for t in times if start <= t < start + seconds) for start in times)


@pytest.mark.parametrize(
    ("limits", "n", "expected_span"),
    [
        ((RateLimit(1, 0.1),), 11, 1.0),  # Nexudus: 1 per 100 ms
        ((RateLimit(200, 60.0),), 401, 120.0),  # Bindbee: 200 per minute, in bursts
        ((RateLimit(1, 0.1), RateLimit(120, 60.0)), 241, 120.0),  # the per-minute limit dominates
    ],
)
def test_requests_stay_under_every_limit(limits: tuple[RateLimit, ...], n: int, expected_span: float) -> None:
    clock = ManualClock()
    pacer = Pacer(limits, clock=clock)
    times = request_times(pacer, clock, n)
    for limit in limits:
        assert max_in_window(times, limit.seconds) <= limit.count
    assert times[-1] - times[0] == pytest.approx(expected_span)


def test_margin_widens_every_window() -> None:
    clock = ManualClock()
    pacer = Pacer([RateLimit(1, 0.1)], clock=clock, margin_s=0.02)
    times = request_times(pacer, clock, 3)
    assert [round(b - a, 6) for a, b in itertools.pairwise(times)] == [0.12, 0.12]


def test_a_request_counts_from_its_completion() -> None:
    # The provider sees a slow request arrive late: the next one waits from its response.
    clock = ManualClock()
    pacer = Pacer([RateLimit(1, 0.1)], clock=clock)
    slot = pacer.acquire()
    clock.sleep(0.07)  # request in flight
    slot.release()
    start = clock.monotonic()
    assert pacer.acquire().waited == pytest.approx(0.1)
    assert clock.monotonic() - start == pytest.approx(0.1)


def test_no_limits_means_no_waiting() -> None:
    clock = ManualClock()
    pacer = Pacer([], clock=clock)
    assert sum(pacer.acquire().waited for _ in range(1000)) == 0
    assert clock.sleeps == []


def test_acquire_reports_the_time_waited() -> None:
    clock = ManualClock()
    pacer = Pacer([RateLimit(2, 10.0)], clock=clock)
    waits = []
    for _ in range(3):
        slot = pacer.acquire()
        slot.release()
        waits.append(slot.waited)
    assert waits == [0.0, 0.0, pytest.approx(10.0)]


def test_a_request_in_flight_holds_back_the_next_until_its_response():
    # It may reach the provider any moment: the next one may not start before it is answered.
    clock = SystemClock()
    pacer = Pacer([RateLimit(1, 0.01)], clock=clock)
    slot = pacer.acquire()
    started: list[float] = []
    waiter = threading.Thread(target=lambda: started.append(pacer.acquire().waited), daemon=True)
    waiter.start()
    waiter.join(0.2)  # 20 windows: were it counted from its grant, the next would have started
    assert waiter.is_alive() and not started
    answered = clock.monotonic()
    slot.release()
    waiter.join(5)
    assert started and clock.monotonic() - answered >= 0.01


def test_pause_holds_back_every_request() -> None:
    clock = ManualClock()
    pacer = Pacer([], clock=clock)
    pacer.pause_for(5.0)
    start = clock.monotonic()
    pacer.acquire()
    assert clock.monotonic() - start == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("remaining", "reset_in", "expected_wait"),
    [(10, 30.0, 0.0), (0, 30.0, 30.0), (0, -5.0, 0.0), (0, 900.0, 120.0)],
)
def test_provider_budget_pauses_until_reset(remaining: int, reset_in: float, expected_wait: float) -> None:
    clock = ManualClock()
    pacer = Pacer([], clock=clock)
    pacer.observe_budget(remaining, clock.time() + reset_in, cap_s=120.0)
    assert pacer.acquire().waited == pytest.approx(expected_wait)


def test_invalid_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        RateLimit(0, 1.0)
    with pytest.raises(ValueError):
        RateLimit(1, 0.0)


def test_threads_share_one_budget() -> None:
    # Real clock, short window: 4 threads x 5 requests at 1 per 10 ms.
    clock = SystemClock()
    pacer = Pacer([RateLimit(1, 0.01)], clock=clock)
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            pacer.acquire().release()
            with lock:
                stamps.append(clock.monotonic())

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 20
    assert stamps[-1] - stamps[0] >= 19 * 0.01 - 0.001
