"""`Router`: the routing policy run for every ``route`` call.

1. The caller number from the header block, normalised (no round trip: Asterisk sent it).
2. One store read gives the sticky agent and the local customer; other sources (the
   upstream API) are asked only when the store does not know the customer.
3. Not recognised, or withheld: answer, prompt for a code with GET DATA (attempts, timeout
   and sound files configurable), look the code up the same way. Wrong codes count against
   the number and the account (`codes`); past the limit the prompt is locked.
4. Return the SMARTROUTING_* variables; the engine sends them in one round trip.

A recognised caller costs one round trip in all; the prompt path costs the prompts. With
the availability check on, a call to a sticky agent costs one more (`availability`).
Learned sticky-agent entries not seen within ``learning.affinity_days`` are skipped by the
store read itself, so the window costs nothing.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence

from fastagi_router.agi import AGIRequest, commands
from fastagi_router.config import Settings
from fastagi_router.errors import CallEnded, SourceError, StoreError, ValidationError
from fastagi_router.logutil import sanitize
from fastagi_router.metrics import Metrics
from fastagi_router.model import (
    DEFAULT_ACCOUNT,
    NumberMatch,
    Route,
    check_account,
    check_code,
)
from fastagi_router.phone import CallerNumber, NumberParser
from fastagi_router.routing.availability import AgentCheck
from fastagi_router.routing.codes import CodeGuard
from fastagi_router.routing.decision import Decision, Status
from fastagi_router.routing.sources import CallContext, CustomerSource, Found
from fastagi_router.server.calllog import Answer
from fastagi_router.server.session import Session
from fastagi_router.store import Store

log = logging.getLogger("fastagi_router.routing")


class Router:
    """Decides where each call goes. ``route`` is the handler for the ``route`` script."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        numbers: NumberParser,
        metrics: Metrics,
        sources: Sequence[CustomerSource] = (),
        *,
        codes: CodeGuard | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.numbers = numbers
        self.metrics = metrics
        self.sources = tuple(sources)
        self.agent_check = (
            AgentCheck(settings.availability, metrics) if settings.availability.enabled else None
        )
        # Fast-path answers by (account, number key), with the store answer they came from.
        self._answers: dict[tuple[str, str], tuple[NumberMatch, Answer]] = {}

        #: Wrong identification codes per number and per account (in this process).
        self.codes = codes if codes is not None else CodeGuard(settings.codes)
        metrics.describe(
            "codes_total",
            "counter",
            "Codes typed by outcome (accepted, rejected, too_short, invalid); "
            "locked: calls refused the prompt after too many wrong codes",
        )
        metrics.gauge(
            "code_failures_tracked",
            lambda: float(len(self.codes)),
            "Numbers and accounts with recent wrong codes",
        )

    def apply(self, settings: Settings) -> None:
        """Use ``settings`` from the next call on (a reload): default queues and region,
        deadline, prompt. Decisions remembered for the fast path are dropped."""
        if settings.default_region != self.settings.default_region:
            self.numbers = NumberParser(settings.default_region)
        if settings.codes != self.settings.codes:
            self.codes = CodeGuard(settings.codes)  # new limits: counting starts again
        self.settings = settings
        self._answers.clear()

    async def route(self, session: Session) -> Answer:
        """Handle one ``route`` call: decide, and return the answer (the variables to set)."""
        decision = await self.decide(session)
        if self.agent_check is not None and decision.status is Status.AGENT:
            decision = await self.agent_check.apply(session, decision)
        return _answer(decision, session.params.get("account") or DEFAULT_ACCOUNT)

    def route_now(self, request: AGIRequest) -> Answer | None:
        """The synchronous fast path of ``route``: the answer when the decision needs no
        waiting at all (the sticky agent or customer is in memory or one microsecond read
        away), else None, and the engine runs `route` as a task. Both decide alike."""
        account = request.parameters().get("account") or DEFAULT_ACCOUNT
        number = self.numbers.caller(request.callerid)
        if number is None or not _valid_account(account):
            return None
        match = self.store.lookup_number_now(
            account, number.key, learned_since=self._learned_since()
        )
        if match is None or (match.customer is None and (match.route is None or self.sources)):
            return None  # unknown here: the sources or the prompt decide, with waiting
        if match.route is not None and self.agent_check is not None:
            return None  # the agent's state is asked over the session: one round trip more
        key = (account, number.key)
        known = self._answers.get(key)
        if known is not None and known[0] is match:
            # The store answered with the very object it gave last time (nothing changed
            # since, see HotStore): so is the decision.
            return known[1]
        found = Found(match.customer, "local") if match.customer is not None else None
        decided = self._from_match(match.route, found, _shown(number), "")
        assert decided is not None
        answer = _answer(decided, account)
        if len(self._answers) >= _ANSWERS_KEPT:
            self._answers.clear()
        self._answers[key] = (match, answer)
        return answer

    def fallback(self, request: AGIRequest, reason: str) -> Answer:
        """The answer for a call the router could not decide (see `Decision.fallback`)."""
        number = self.numbers.caller(request.callerid)
        decision = Decision.fallback(reason, self.settings.default_queues, _shown(number))
        return _answer(decision, request.parameters().get("account") or DEFAULT_ACCOUNT)

    async def decide(self, session: Session) -> Decision:
        """Return the decision for one call. Raises `CallEnded` when the caller hangs up."""
        account = session.params.get("account") or DEFAULT_ACCOUNT
        number = self.numbers.caller(session.request.callerid)
        shown = _shown(number)
        try:
            check_account(account)
        except ValidationError:
            log.warning(
                "[%s] invalid account %r in the AGI URL",
                sanitize(session.uniqueid),
                sanitize(account),
            )
            return Decision.fallback("bad_request", self.settings.default_queues, shown)
        call = _context(session)
        try:
            if number is not None:
                decision = await self._by_number(account, number, shown, call)
                if decision is not None:
                    return decision
            return await self._by_code(session, account, number, shown, call)
        except StoreError as exc:
            log.error("[%s] store unavailable: %s", sanitize(session.uniqueid), exc)
            return Decision.fallback("store_error", self.settings.default_queues, shown)
        except SourceError as exc:
            log.warning("[%s] customer source failed: %s", sanitize(session.uniqueid), exc)
            return Decision.fallback(exc.reason, self.settings.default_queues, shown)

    async def _by_number(
        self, account: str, number: CallerNumber, shown: str, call: CallContext
    ) -> Decision | None:
        match = await self.store.lookup_number(
            account, number.key, learned_since=self._learned_since()
        )
        found = Found(match.customer, "local") if match.customer is not None else None
        failure: SourceError | None = None
        if found is None:
            try:
                found = await self._ask_sources(account, call, number=number)
            except SourceError as exc:
                if match.route is None:
                    raise
                failure = exc
        return self._from_match(match.route, found, shown, failure.reason if failure else "")

    def _from_match(
        self, route: Route | None, found: Found | None, shown: str, reason: str
    ) -> Decision | None:
        """The decision for a number: AGENT with a sticky agent, CUSTOMER with a customer."""
        if route is not None:
            return self._agent(route, found, shown, reason)
        if found is not None:
            return self._customer(found, shown, "number")
        return None

    def _learned_since(self) -> float | None:
        """The oldest last-seen time at which a learned entry still routes (None: no window)."""
        days = self.settings.learning.affinity_days
        return time.time() - days * 86400 if days else None

    async def _ask_sources(
        self,
        account: str,
        call: CallContext,
        *,
        number: CallerNumber | None = None,
        code: str | None = None,
    ) -> Found | None:
        for source in self.sources:
            found = (
                await source.by_number(account, number, call=call)
                if number is not None
                else await source.by_code(account, code or "", call=call)
            )
            if found is not None:
                return found
        return None

    async def _find_code(self, account: str, code: str, call: CallContext) -> Found | None:
        customer = await self.store.lookup_code(account, code)
        if customer is not None:
            return Found(customer, "local")
        return await self._ask_sources(account, call, code=code)

    async def _by_code(
        self,
        session: Session,
        account: str,
        number: CallerNumber | None,
        shown: str,
        call: CallContext,
    ) -> Decision:
        prompt = self.settings.prompt
        key = number.key if number is not None else None
        typed = False
        if prompt.attempts > 0:
            if self.codes.locked(account, key):
                return self._locked(session, account, shown, newly=False)
            reply = await session.command(commands.answer())
            if reply.result_int == -1:
                raise CallEnded("the channel could not be answered")
        for attempt in range(prompt.attempts):
            if attempt:
                reply = await session.command(commands.stream_file(prompt.invalid_file))
                if reply.result_int == -1:
                    raise CallEnded("the caller hung up during the prompt")
            reply = await session.command(
                commands.get_data(prompt.file, prompt.timeout_ms, prompt.max_digits)
            )
            if reply.result == "-1":
                raise CallEnded("the caller hung up during the prompt")
            digits = (reply.result or "").strip()
            if not digits:
                continue
            typed = True
            outcome = _unusable(digits, prompt.min_digits)
            if outcome is None:
                found = await self._find_code(account, digits, call)
                if found is not None:
                    self.metrics.inc("codes_total", outcome="accepted")
                    return self._customer(found, shown, "code")
                outcome = "rejected"
            self.metrics.inc("codes_total", outcome=outcome)
            if self.codes.failed(account, key):
                return self._locked(session, account, shown, newly=True)
        return Decision(
            Status.UNKNOWN,
            destinations=self.settings.default_queues,
            number=shown,
            reason="no_match" if typed else "no_code",
        )

    def _locked(self, session: Session, account: str, shown: str, *, newly: bool) -> Decision:
        """The decision for a caller refused the code prompt: too many wrong codes."""
        self.metrics.inc("codes_total", outcome="locked")
        # Once when the limit is reached; the calls refused afterwards only at INFO, so that
        # a brute-force run cannot flood the log.
        log.log(
            logging.WARNING if newly else logging.INFO,
            "[%s] code prompt locked for %s in account %s: too many wrong codes",
            sanitize(session.uniqueid),
            sanitize(shown or "a withheld number"),
            account,
        )
        return Decision(
            Status.UNKNOWN,
            destinations=self.settings.default_queues,
            number=shown,
            reason="too_many_attempts",
        )

    def _destinations(self, found: Found | None) -> tuple[str, ...]:
        if found is not None and any(found.customer.destinations):
            return found.customer.destinations
        return self.settings.default_queues

    def _agent(self, route: Route, found: Found | None, shown: str, reason: str) -> Decision:
        customer = found.customer if found is not None else None
        return Decision(
            Status.AGENT,
            agent=route.agent,
            destinations=self._destinations(found),
            vip=customer.vip if customer else False,
            oncall=customer.oncall if customer else False,
            customer=customer.customer_id if customer else "",
            number=shown,
            identified_by="number",
            source=found.source if found is not None else "local",
            reason=reason,
        )

    def _customer(self, found: Found, shown: str, identified_by: str) -> Decision:
        customer = found.customer
        return Decision(
            Status.CUSTOMER,
            destinations=self._destinations(found),
            vip=customer.vip,
            oncall=customer.oncall,
            customer=customer.customer_id,
            number=shown,
            identified_by=identified_by,
            source=found.source,
        )


def _unusable(digits: str, min_digits: int) -> str | None:
    """Why typed ``digits`` are not looked up (``too_short``, ``invalid``), or None."""
    if len(digits) < min_digits:
        return "too_short"
    try:
        check_code(digits)
    except ValidationError:
        return "invalid"
    return None


_ANSWERS_KEPT = 20000


def _answer(decision: Decision, account: str) -> Answer:
    """The engine's view of ``decision``: its variables, and the words for metrics and logs."""
    return Answer(
        decision.variables(),
        str(decision.status),
        source=decision.source,
        reason=decision.reason or "none",
        account=account,
    )


@functools.lru_cache(maxsize=1024)
def _valid_account(account: str) -> bool:
    try:
        check_account(account)
    except ValidationError:
        return False
    return True


def _context(session: Session) -> CallContext:
    """What the sources may know of the call: its id, the number dialled, its budget."""
    deadline = session.deadline
    return CallContext(
        uniqueid=session.uniqueid,
        extension=session.request.get("extension"),
        remaining=deadline.remaining if deadline is not None else CallContext().remaining,
    )


def _shown(number: CallerNumber | None) -> str:
    """SMARTROUTING_NUMBER: E.164 when the number parses, else the digits received."""
    if number is None:
        return ""
    return number.e164 or number.key
