"""A Nexudus token that runs out while pages are fetched concurrently, over real HTTP against the sandbox.

The sandbox grants tokens that authenticate only a few requests (`TokenStore.limit_uses`): every
request in flight when one runs out gets 401, and the token renewed for them runs out in turn
while some of their resends still carry it. Those resends must try again; only a token renewed
for a request and refused on its first use is a real refusal.
"""

import pytest

from completions_assets.http.errors import AuthenticationError
from completions_assets.providers.nexudus.lessons import NEXUDUS_SCHEMA
from completions_assets_tests.clients_support import Oracle, days_between, nexudus_client, running_sandbox

pytestmark = pytest.mark.integration

RANGE = days_between("2024-01-01", "2024-01-10")


@pytest.mark.parametrize(("concurrent", "uses"), [(8, 2), (8, 5), (4, 3)])
def test_tokens_running_out_under_concurrent_pages_lose_nothing(concurrent: int, uses: int) -> None:
    with running_sandbox(days=12) as sandbox:
        sandbox.app.tokens.limit_uses(uses)
        # 20 records a page: over a hundred pages, so dozens of tokens run out mid-window.
        with nexudus_client(sandbox, page_size=20, max_concurrent_requests=concurrent) as client:
            batches = list(client.fetch_days(RANGE))
            grants = client.token_auth.grants
        oracle = Oracle(sandbox, "nexudus")  # checks itself against the sandbox's ground truth
        assert [b.day for b in batches] == RANGE
        for batch in batches:
            assert batch.table.schema == NEXUDUS_SCHEMA
            assert batch.table.to_pylist() == oracle.rows_in(batch.day.start, batch.day.end)
        stats = sandbox.stats()
        pages = stats["nexudus"]["statuses"]["200"]
        assert pages > 100 and grants >= pages / uses  # the tokens did run out, again and again
        assert stats["nexudus"]["statuses"]["401"] >= grants - 1


def test_a_token_refused_on_its_first_use_after_a_renewal_is_fatal() -> None:
    with running_sandbox(days=12) as sandbox:
        sandbox.app.tokens.limit_uses(0)  # every granted token is refused on its first use
        with nexudus_client(sandbox, max_concurrent_requests=8) as client:
            with pytest.raises(AuthenticationError, match=r"^nexudus: HTTP 401 .*Authorization has been denied"):
                list(client.fetch_days(days_between("2024-01-05", "2024-01-05")))
            grants = client.token_auth.grants
        # The first grant, one renewal after its 401, and no other: the fresh token's 401 stands.
        assert grants == 2
        assert sandbox.stats()["nexudus"]["statuses"] == {"401": 2}
