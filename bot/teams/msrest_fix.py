"""Removes msrest's per-request cost from botbuilder 4.17's CloudAdapter: `safe_codes` becomes a frozenset.

Where the cost is (cProfile of a bare CloudAdapter bot answering an `adaptiveCard/action` invoke, 200 requests,
botbuilder 4.17.1, msrest 0.7.1): `CloudAdapterBase.process_activity` builds two msrest clients per request,
a `ConnectorClient` (`ConnectorFactory.create`) and a `TokenApiClient` (`create_user_token_client`). Each
builds an `msrest.Configuration`, whose `RequestHTTPSenderConfiguration.__init__` builds a `ClientRetryPolicy`,
whose `__init__` computes

    retry_codes = [i for i in range(999) if i not in self.safe_codes]

with `safe_codes` a class-level *list* of 501 ints: ~999 x 501 / 2 comparisons, twice per request. That list
comprehension was 3.1 s of the 3.8 s spent in `process_activity` (~76%, 400 constructions). msrest is
deprecated and the upstream fix (the same frozenset) was closed unmerged.

The patch: replace the class attribute `ClientRetryPolicy.safe_codes` by a frozenset of the same codes. The
comprehension then does hash lookups, and yields the same list in the same order, so every retry policy is
exactly what it was (same `status_forcelist`, totals, back-off). Nothing else in msrest, botframework-connector
or botbuilder reads `safe_codes` (checked by grep in site-packages, msrest 0.7.1 / botbuilder 4.17.1).

`tests/unit/test_teams_msrest_fix.py` fails when an msrest or botbuilder upgrade makes this wrong or
unnecessary (version range, the shape of `ClientRetryPolicy.__init__`, two policies per request): re-profile
then, as above. `bench/teams_latency.py` measures the stock and the patched bot side by side.
"""

from __future__ import annotations

import logging

from msrest.universal_http.requests import ClientRetryPolicy

_LOG = logging.getLogger(__name__)


def is_applied() -> bool:
    """True when `ClientRetryPolicy.safe_codes` is already our frozenset."""
    return isinstance(ClientRetryPolicy.safe_codes, frozenset)


def apply() -> bool:
    """Patch msrest once per process (idempotent); True when the patch is in place afterwards.

    The Teams edge calls this once when it builds its botbuilder CloudAdapter (bot/teams/, wired by
    bot/server.py), before the first activity. If msrest's attribute is not the list this patch expects, it
    leaves msrest alone and logs a warning: a slow bot is better than a wrong one.
    """
    if is_applied():
        return True
    codes = ClientRetryPolicy.safe_codes
    if not (isinstance(codes, list) and all(type(code) is int for code in codes)):
        _LOG.warning("msrest ClientRetryPolicy.safe_codes is a %s, not a list of ints: the msrest fix is "
                     "not applied (see bot/teams/msrest_fix.py)", type(codes).__name__)
        return False
    # a frozenset answers `in` exactly as the list did for ints, in constant time
    ClientRetryPolicy.safe_codes = frozenset(codes)  # type: ignore[assignment]  # msrest declares a list
    return True
