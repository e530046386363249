"""The Asterisk dialplan in dialplan/: syntax, jump targets, and the router's contract.

There is no Asterisk here. `dialplan_lint` reads the files the way Asterisk 20 does and
reports what it would reject or do silently wrong; its `Simulator` runs the SmartRouting
contexts for every answer the router can give. The names of the router's variables come
from `fastagi_router.routing.decision`, never from a list written here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fastagi_router.routing.decision import Decision, Status

try:
    import dialplan_lint as lint
except ImportError:  # tests/ imported as a package
    from tests import dialplan_lint as lint

REPO = Path(__file__).resolve().parents[1]
DIALPLAN_DIR = REPO / "dialplan"
MAIN = DIALPLAN_DIR / "extensions_smartrouting.conf"
DEPLOY = REPO / "deploy" / "asterisk" / "extensions.conf"
DIALPLAN_FILES = sorted(p for p in DIALPLAN_DIR.iterdir() if p.is_file() and p.suffix != ".md")

#: Every variable the router sets, from the router itself.
ROUTER_VARIABLES = frozenset(
    name for status in Status for name, _value in Decision(status=status).variables()
)
ROUTER_PREFIX = "SMARTROUTING_"


def container_resolver(name: str, _from: Path) -> list[Path] | None:
    """Resolve an #include as inside the asterisk container of docker-compose.yml, where
    /etc/asterisk/dialplan is ./dialplan and /etc/asterisk/*.conf is ./deploy/asterisk."""
    path = name.removeprefix("/etc/asterisk/")
    if path.startswith("dialplan/"):
        found = DIALPLAN_DIR / path.removeprefix("dialplan/")
    else:
        found = DEPLOY.parent / path
    return [found] if found.is_file() else None


def lint_text(tmp_path: Path, text: str) -> list[str]:
    """Lint one file holding ``text``; return the problem messages."""
    path = tmp_path / "extensions.conf"
    path.write_text(text, encoding="utf-8")
    return [p.message for p in lint.lint_files([path])]


def the_plan() -> lint.Dialplan:
    return lint.load([MAIN])


# -- the files are clean ------------------------------------------------------------------


def test_dialplan_dir_has_the_snippet() -> None:
    assert MAIN in DIALPLAN_FILES


@pytest.mark.parametrize("path", DIALPLAN_FILES, ids=lambda p: p.name)
def test_dialplan_file_has_no_problem(path: Path) -> None:
    problems = lint.lint_files([path])
    assert not problems, "\n".join(map(str, problems))


def test_deploy_extensions_conf_with_its_include_has_no_problem() -> None:
    plan = lint.load([DEPLOY], container_resolver)
    problems = plan.lint()
    assert not problems, "\n".join(map(str, problems))
    assert "smartrouting" in plan.contexts, "the #include did not bring the dialplan in"
    assert plan.globals["SRCFG_URL"] == "agi://router:4573/route"


def test_snippet_has_no_globals_section() -> None:
    # Asterisk reads only the first [globals]: one in an #included file is ignored, or
    # hides the admin's own. Settings have defaults in [smartrouting-settings] instead.
    plan = the_plan()
    assert not plan.globals
    assert "smartrouting-settings" in plan.contexts


def test_settings_never_use_the_router_prefix() -> None:
    plan = lint.load([DEPLOY], container_resolver)
    for name in plan.globals:
        assert name.startswith("SRCFG_"), name
    written = {
        m.group(1)
        for step in plan.steps()
        for m in re.finditer(r"(?:^|[(?:])Set\(_*([A-Za-z0-9_]+)=", f"{step.app}({step.args})")
    }
    assert {n for n in written if n.startswith("SRCFG_")}, "no setting defaults found"
    for name in written:
        assert name.startswith(("SRCFG_", "SR_", ROUTER_PREFIX)) or name == "QUEUE_PRIO", name


# -- the linter catches what it should ----------------------------------------------------


def test_lint_catches_an_unbalanced_parenthesis(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,NoOp((unclosed)\n")
    assert any("unbalanced '('" in p for p in problems), problems


def test_lint_catches_a_semicolon_that_cuts_the_line(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,Verbose(1,busy; trying again)\n")
    assert any("no closing parenthesis" in p for p in problems), problems


def test_lint_accepts_an_escaped_semicolon(tmp_path: Path) -> None:
    assert lint_text(tmp_path, "[c]\nexten => s,1,Verbose(1,busy\\; trying again)\n") == []


def test_lint_catches_a_goto_to_a_missing_label(tmp_path: Path) -> None:
    text = "[c]\nexten => s,1,Goto(nowhere)\n same => n(somewhere),Hangup()\n"
    problems = lint_text(tmp_path, text)
    assert any("no label 'nowhere'" in p for p in problems), problems


def test_lint_catches_missing_targets_in_every_form(tmp_path: Path) -> None:
    text = (
        "[c]\n"
        "exten => s,1,GotoIf($[1 = 1]?ok:missing1)\n"
        " same => n(ok),Gosub(other,s,1(arg))\n"
        " same => n,ExecIf($[1 = 1]?Goto(c,t,1))\n"
        " same => n,Goto(${TARGET},s,1)\n"
        " same => n,Goto(${UNSET_VAR},s,1)\n"
        " same => n,Set(TARGET=nocontext)\n"
    )
    problems = lint_text(tmp_path, text)
    assert any("no label 'missing1'" in p for p in problems), problems
    assert any("no context [other]" in p for p in problems), problems
    assert any("no extension 't' in [c]" in p for p in problems), problems
    assert any("no context [nocontext]" in p for p in problems), problems
    assert any("cannot check target '${UNSET_VAR},s,1'" in p for p in problems), problems


def test_lint_resolves_targets_through_includes_and_patterns(tmp_path: Path) -> None:
    text = (
        "[c]\ninclude => d\nexten => s,1,Goto(c,0281234567,1)\n same => n,Goto(c,100,1)\n"
        "[d]\nexten => _0X.,1,Hangup()\nexten => 100,1,Hangup()\n"
    )
    assert lint_text(tmp_path, text) == []


def test_lint_catches_an_unknown_application(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,Dail(PJSIP/100,20)\n")
    assert any("unknown application 'Dail'" in p for p in problems), problems


def test_lint_catches_an_application_removed_in_asterisk_21(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,Macro(old)\n")
    assert any("removed in Asterisk 21" in p for p in problems), problems


def test_lint_catches_an_unknown_function(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,NoOp(${STRLEN(${EXTEN})})\n")
    assert any("unknown function STRLEN()" in p for p in problems), problems


def test_lint_catches_an_unterminated_variable(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,Set(A=${B)\n")
    assert problems, problems


def test_lint_catches_same_before_any_exten(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\n same => n,NoOp(first)\nexten => s,1,Hangup()\n")
    assert any("'same =>' before any 'exten =>'" in p for p in problems), problems


def test_lint_catches_priorities_that_do_not_start_at_one(tmp_path: Path) -> None:
    # "n" continues the numbering of the previous line, even of another extension.
    problems = lint_text(tmp_path, "[c]\nexten => a,1,NoOp()\nexten => b,n,Hangup()\n")
    assert any("starts at priority 2" in p for p in problems), problems


def test_lint_catches_a_gap_and_a_duplicate_priority(tmp_path: Path) -> None:
    text = "[c]\nexten => s,1,NoOp()\nexten => s,3,NoOp()\nexten => s,3,Hangup()\n"
    problems = lint_text(tmp_path, text)
    assert any("gap in extension 's'" in p for p in problems), problems
    assert any("already defined" in p for p in problems), problems


def test_lint_reports_a_second_globals_section(tmp_path: Path) -> None:
    text = "[globals]\nA=1\n[globals]\nB=2\n[c]\nexten => s,1,Hangup()\n"
    problems = lint_text(tmp_path, text)
    assert any("second [globals]" in p for p in problems), problems


def test_lint_catches_an_unclosed_block_comment_and_a_bad_line(tmp_path: Path) -> None:
    problems = lint_text(tmp_path, "[c]\nexten => s,1,Hangup()\n;-- note\nnot a setting\n")
    assert any("never closed" in p for p in problems), problems
    problems = lint_text(tmp_path, "[c]\nexten => s,1,Hangup()\nnot a setting\n")
    assert any("cannot parse line" in p for p in problems), problems


# -- the contract with the router ---------------------------------------------------------


def router_reads(plan: lint.Dialplan) -> set[str]:
    """Every SMARTROUTING_* name read inside ${...} anywhere in the dialplan."""
    names: set[str] = set()
    for step in plan.steps():
        for kind, inner in lint.iter_expressions(step.args):
            if kind == "$":
                names.update(re.findall(r"\bSMARTROUTING_[A-Z0-9_]+", inner))
    return names


def without_variables(text: str) -> str:
    """``text`` with every ${...} removed."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("${", i):
            i = lint.find_close(text, i + 2, "{", "}")
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def test_every_router_variable_the_dialplan_reads_is_one_the_router_sets() -> None:
    reads = router_reads(the_plan())
    assert reads - ROUTER_VARIABLES == set()
    for needed in ("STATUS", "AGENT", "DEST1", "DEST2", "DEST3", "DEST4", "VIP"):
        assert ROUTER_PREFIX + needed in reads


def test_router_variables_appear_only_as_reads_or_the_status_reset() -> None:
    for step in the_plan().steps():
        bare = without_variables(f"{step.app}({step.args})")
        for match in re.finditer(r"SMARTROUTING_[A-Z0-9_]*", bare):
            # The only write: clearing the status before the AGI.
            assert step.app == "Set" and step.args == "SMARTROUTING_STATUS=", (
                f"{step.file}:{step.line}: {match.group()} outside ${{...}}"
            )


def test_router_values_are_used_only_in_safe_places() -> None:
    for step in the_plan().steps():
        if ROUTER_PREFIX not in step.args or step.app in ("Set", "Verbose", "NoOp"):
            continue
        where = f"{step.file}:{step.line}"
        if step.app in ("GotoIf", "ExecIf"):
            condition, _, branches = step.args.partition("?")
            assert ROUTER_PREFIX not in branches, where
            for kind, inner in lint.iter_expressions(condition):
                if ROUTER_PREFIX in inner and kind == "$" and not inner.startswith("ISNULL("):
                    assert re.fullmatch(r"SMARTROUTING_[A-Z0-9_]+", inner), where
            assert condition.startswith(("$[", "${ISNULL(")), where
        elif step.app == "Dial":
            device, _, rest = step.args.partition(",")
            assert device == "${SRCFG_AGENT_TECH}/${SMARTROUTING_AGENT}", where
            assert ROUTER_PREFIX not in rest, where
        elif step.app == "Queue":
            queue, _, rest = step.args.partition(",")
            assert re.fullmatch(r"\$\{SMARTROUTING_DEST[1-4]\}", queue), where
            assert ROUTER_PREFIX not in rest, where
        else:
            pytest.fail(f"{where}: {step.app}() uses a router variable")


def test_every_status_value_is_tested_by_the_dialplan() -> None:
    compared = set()
    for step in the_plan().steps():
        compared.update(re.findall(r'"\$\{SMARTROUTING_STATUS\}" = "([A-Z]*)"', step.args))
    assert compared == {str(s) for s in Status}


# -- simulated calls ----------------------------------------------------------------------


def simulate(
    variables: list[tuple[str, str]] | None = None,
    *,
    agistatus: str = "SUCCESS",
    dial: str = "NOANSWER",
    answered_in: str | None = None,
    channel: dict[str, str] | None = None,
    overrides: dict[str, str] | None = None,
    plan: lint.Dialplan | None = None,
    context: str = "smartrouting",
    exten: str = "s",
) -> tuple[lint.Run, list[str]]:
    """Run a call; the router answers ``agistatus`` and sets ``variables``. Returns the
    run and the AGI URLs requested."""
    urls: list[str] = []

    def agi(url: str) -> tuple[str, list[tuple[str, str]]]:
        urls.append(url)
        return agistatus, list(variables or [])

    sim = lint.Simulator(
        plan or the_plan(),
        agi=agi,
        dial=lambda _device, _timeout: dial,
        queue=lambda name: "ANSWERED" if name == answered_in else "TIMEOUT",
        global_overrides=overrides,
    )
    return sim.run(context, exten, channel), urls


def queues(run: lint.Run) -> list[tuple[str, str, str]]:
    return [(c.args[0], c.args[1], c.queue_prio) for c in run.apps("Queue")]


def dials(run: lint.Run) -> list[tuple[str, ...]]:
    return [c.args for c in run.apps("Dial")]


@pytest.mark.parametrize("status", list(Status), ids=str)
def test_every_status_reaches_the_routers_destinations(status: Status) -> None:
    agent = "1001" if status is Status.AGENT else ""
    decision = Decision(status, agent=agent, destinations=("q1", "q2"))
    run, _ = simulate(decision.variables())
    expected_dials = [("PJSIP/1001", "20")] if status is Status.AGENT else []
    assert dials(run) == expected_dials
    assert queues(run) == [("q1", "300", ""), ("q2", "300", "")]
    assert run.ended == "hangup"  # smartrouting-noanswer


def test_agent_answered_ends_the_call_without_queues() -> None:
    decision = Decision(Status.AGENT, agent="1001", destinations=("sales",), vip=True)
    run, _ = simulate(decision.variables(), dial="ANSWER")
    assert dials(run) == [("PJSIP/1001", "20")]
    assert queues(run) == []
    assert run.ended == "answered"


@pytest.mark.parametrize("dialstatus", ["NOANSWER", "BUSY", "CHANUNAVAIL", "CONGESTION"])
def test_agent_not_answering_falls_back_to_the_customers_queues(dialstatus: str) -> None:
    decision = Decision(Status.AGENT, agent="1001", destinations=("sales", "support"), vip=True)
    run, _ = simulate(decision.variables(), dial=dialstatus)
    assert dials(run) == [("PJSIP/1001", "20")]
    assert queues(run) == [("sales", "300", "10"), ("support", "300", "10")]


def test_agent_status_without_an_agent_goes_to_the_queues() -> None:
    run, _ = simulate(Decision(Status.AGENT, destinations=("sales",)).variables())
    assert dials(run) == []
    assert queues(run) == [("sales", "300", "")]


@pytest.mark.parametrize(
    "destinations",
    [
        ("a", "b", "c", "d"),
        ("", "b", "c", "d"),
        ("a", "", "c", "d"),
        ("a", "b", "", "d"),
        ("a", "b", "c", ""),
        ("a", "", "", "d"),
        ("", "", "", "d"),
        ("a",),
    ],
    ids=lambda d: "-".join(x or "_" for x in d),
)
def test_customer_queues_in_order_skipping_empty_slots(destinations: tuple[str, ...]) -> None:
    decision = Decision(Status.CUSTOMER, destinations=destinations, customer="C1")
    run, _ = simulate(decision.variables())
    assert queues(run) == [(q, "300", "") for q in destinations if q]
    assert run.calls[-1].app == "Hangup"


def test_customer_answered_in_a_queue_stops_there() -> None:
    decision = Decision(Status.CUSTOMER, destinations=("a", "b"))
    run, _ = simulate(decision.variables(), answered_in="a")
    assert [q[0] for q in queues(run)] == ["a"]
    assert run.ended == "answered"


def test_vip_customer_waits_ahead_in_every_queue() -> None:
    decision = Decision(Status.CUSTOMER, destinations=("a", "b"), vip=True)
    run, _ = simulate(decision.variables(), overrides={"SRCFG_VIP_PRIORITY": "7"})
    assert queues(run) == [("a", "300", "7"), ("b", "300", "7")]


def test_customer_without_queues_gets_the_default_queue() -> None:
    run, _ = simulate(Decision(Status.CUSTOMER, customer="C1").variables())
    assert queues(run) == [("default", "300", "")]


@pytest.mark.parametrize("status", [Status.UNKNOWN, Status.FALLBACK], ids=str)
def test_unknown_and_fallback_use_the_routers_default_queues(status: Status) -> None:
    decision = Decision(status, destinations=("default", "overflow"), reason="no_match")
    run, _ = simulate(decision.variables())
    assert dials(run) == []
    assert queues(run) == [("default", "300", ""), ("overflow", "300", "")]


def test_empty_status_means_no_decision() -> None:
    # The router accepted the connection and closed it without a word: AGISTATUS=SUCCESS.
    run, _ = simulate([], overrides={"SRCFG_DEFAULT_QUEUE": "fallback-q"})
    assert dials(run) == []
    assert queues(run) == [("fallback-q", "300", "")]
    assert any("no decision" in c.args[-1] for c in run.apps("Verbose"))


def test_router_unreachable_goes_to_the_default_queue() -> None:
    run, _ = simulate([], agistatus="FAILURE")
    assert queues(run) == [("default", "300", "")]


@pytest.mark.parametrize("agistatus", ["FAILURE", "NOTFOUND", ""])
def test_anything_but_agi_success_ignores_the_variables(agistatus: str) -> None:
    decision = Decision(Status.AGENT, agent="1001", destinations=("sales",))
    run, _ = simulate(decision.variables(), agistatus=agistatus)
    assert dials(run) == []
    assert queues(run) == [("default", "300", "")]


def test_partial_answer_without_status_is_not_trusted() -> None:
    # The router died after some variables but before SMARTROUTING_STATUS (set last).
    variables = Decision(Status.AGENT, agent="1001").variables()
    assert variables[-1][0] == "SMARTROUTING_STATUS"
    run, _ = simulate([*variables[:-1], ("SMARTROUTING_DEST1", "sales")])
    assert dials(run) == []
    assert queues(run) == [("default", "300", "")]


def test_unrecognised_status_goes_to_the_default_queue() -> None:
    run, _ = simulate([("SMARTROUTING_STATUS", "REJECT"), ("SMARTROUTING_DEST1", "x")])
    assert queues(run) == [("default", "300", "")]


def test_stale_status_from_an_earlier_pass_is_cleared() -> None:
    stale = dict(Decision(Status.AGENT, agent="1001", destinations=("old",)).variables())
    run, _ = simulate([], channel=stale)
    assert dials(run) == []
    assert queues(run) == [("default", "300", "")]


def test_caller_hanging_up_during_the_agi_ends_the_call() -> None:
    run, _ = simulate([], agistatus="HANGUP")
    assert run.ended == "agi-hangup"
    assert queues(run) == [] and dials(run) == []


def test_agi_url_and_account() -> None:
    _, urls = simulate(Decision(Status.UNKNOWN, destinations=("d",)).variables())
    assert urls == ["agi://127.0.0.1:4573/route?account=default"]
    run, urls = simulate([], channel={"SR_ACCOUNT": "CL0000"})
    assert urls == ["agi://127.0.0.1:4573/route?account=CL0000"]
    assert run.variables["SR_ACCOUNT"] == "CL0000"
    _, urls = simulate(
        [], overrides={"SRCFG_URL": "agi://10.0.0.5:4573/route", "SRCFG_ACCOUNT": "CL9"}
    )
    assert urls == ["agi://10.0.0.5:4573/route?account=CL9"]


def test_agent_dial_string_follows_the_settings() -> None:
    decision = Decision(Status.AGENT, agent="104@agents", destinations=("q",))
    run, _ = simulate(
        decision.variables(), overrides={"SRCFG_AGENT_TECH": "Local", "SRCFG_AGENT_RING": "15"}
    )
    assert dials(run) == [("Local/104@agents", "15")]


def test_deployed_dialplan_calls_the_router_service() -> None:
    plan = lint.load([DEPLOY], container_resolver)
    for number in ("0281234567", "+842873001234", "s"):
        decision = Decision(Status.CUSTOMER, destinations=("support",))
        run, urls = simulate(decision.variables(), plan=plan, context="from-pstn", exten=number)
        assert urls == ["agi://router:4573/route?account=default"], number
        assert queues(run) == [("support", "300", "")], number
