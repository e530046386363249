"""The simulated Asterisk agrees with the recordings and with res_agi's parsing rules."""

from __future__ import annotations

import pytest

from fastagi_router.agi import AGIConnection, AGIRequest, commands
from fastagi_router.simulator import (
    CallSpec,
    Keypress,
    SimulatedChannel,
    header_block,
    parse_args,
    separate_app_args,
)
from fastagi_router.simulator.channel import MAX_ARGS
from tests import transcripts

RECORDINGS = transcripts.load_all()

LOOKUP_SPEC = CallSpec(
    callerid="0899990988",
    calleridname="Test Caller",
    script="route?account=CL0000",
    host="127.0.0.1",
    port=4573,
    args=("arg1", "arg two"),
    channel="Local/19001234@from-pstn-00000000;2",
    uniqueid="1795653722.1",
    context="from-pstn",
    extension="19001234",
    priority=2,
    threadid=140451265464000,
)
HANGUP_SPEC = CallSpec(
    script="hangup?account=CL0000",
    port=4599,
    args=("arg1", "arg two"),
    channel="Local/19001234@from-pstn-00000001;2",
    uniqueid="1795653763.3",
    priority=3,
    threadid=140451266488000,
)
NO_SCRIPT_SPEC = CallSpec(
    callerid="anonymous",
    calleridname="unknown",
    script=None,
    port=4599,
    channel="Local/19001234@from-pstn-noscript-00000005;2",
    uniqueid="1795653847.11",
    context="from-pstn-noscript",
    priority=1,
    threadid=140451265464000,
)
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"


# -- the header block ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "spec"),
    [
        (transcripts.LOOKUP, LOOKUP_SPEC),
        (transcripts.HANGUP, HANGUP_SPEC),
        (transcripts.NO_SCRIPT, NO_SCRIPT_SPEC),
    ],
)
def test_header_block_is_the_recorded_one_byte_for_byte(name: str, spec: CallSpec) -> None:
    assert header_block(spec) == transcripts.header_block(RECORDINGS[name])


def test_no_script_means_no_network_script_line() -> None:
    block = header_block(NO_SCRIPT_SPEC)
    assert b"agi_network_script" not in block
    assert b"agi_request: agi://127.0.0.1:4599\n" in block
    assert b"agi_arg_" not in block


def test_header_block_parses_back_to_the_spec() -> None:
    spec = CallSpec(
        callerid="+84901234567",
        calleridname="Nguyễn Văn A",
        script="route?account=CL42&mode=dtmf",
        args=("lang=vi", "x y", ""),
        accountcode="ACME",
    )
    conn = AGIConnection()
    conn.receive_data(header_block(spec))
    request = conn.next_event()
    assert isinstance(request, AGIRequest)
    assert request.callerid == spec.callerid
    assert request.get("calleridname") == spec.calleridname
    assert request.script == "route"
    assert dict(request.query) == {"account": "CL42", "mode": "dtmf"}
    assert request.args == spec.args
    assert request.get("accountcode") == "ACME"
    assert request.get("request") == "agi://127.0.0.1:4573/route?account=CL42&mode=dtmf"


# -- replaying the recorded commands -------------------------------------------------------------


def replay(channel: SimulatedChannel, name: str) -> list[tuple[str, list[str], list[str]]]:
    """Run each recorded command; return it with the recorded reply and the simulated one.

    ``HANGUP`` lines are left out of the recorded replies: the channel answers commands, and
    the notice is the driver's to send."""
    results = []
    for line, replies in transcripts.exchanges(RECORDINGS[name]):
        recorded = [reply for reply in replies if reply != "HANGUP"]
        results.append((line, recorded, channel.execute(line).lines))
    return results


def test_replaying_recording_01_gives_every_recorded_reply() -> None:
    channel = SimulatedChannel(spec=LOOKUP_SPEC, keypresses=[Keypress("1234"), Keypress("")])
    results = replay(channel, transcripts.LOOKUP)
    assert len(results) == 26
    for line, recorded, simulated in results:
        assert simulated == recorded, line
    assert channel.answered
    assert not channel.hung_up
    assert channel.variables == {
        "SMARTROUTING_STATUS": "CUSTOMER",
        "SMARTROUTING_NAME": 'O\'Brien "VIP" client',
        "SMARTROUTING_EMPTY": "",
        "SMARTROUTING_UTF8": "Nguyễn Văn A",
        "SMARTROUTING_DEST1": "207",
        "SMARTROUTING_DEST2": "209",
        "SMARTROUTING_DEST3": "214",
        "SMARTROUTING_DEST4": "216",
        "SMARTROUTING_INHERIT": "yes",
    }


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("FOO BAR", ["510 Invalid or unknown command"]),
        (
            "SET VARIABLE",
            [
                "520-Invalid command syntax.  Proper usage follows:",
                "Sets a variable to the current channel.",
                "520 End of proper usage.",
            ],
        ),
        (
            "GET DATA",
            [
                "520-Invalid command syntax.  Proper usage follows:",
                "Stream the given <replaceable>file</replaceable>, and receive DTMF data.",
                "Returns the digits received from the channel at the other end.",
                "520 End of proper usage.",
            ],
        ),
        ("SET VARIABLE ONLY_A_NAME", None),
        ('SET VARIABLE X "1" extra', None),
        ("", ["510 Invalid or unknown command"]),
        ("GET", ["510 Invalid or unknown command"]),
    ],
)
def test_errors_as_res_agi_writes_them(line: str, reply: list[str] | None) -> None:
    lines = SimulatedChannel().execute(line).lines
    if reply is None:  # SET VARIABLE needs exactly two words after it
        assert lines[0] == "520-Invalid command syntax.  Proper usage follows:"
        assert lines[-1] == "520 End of proper usage."
    else:
        assert lines == reply


def test_replaying_recording_02_on_a_channel_that_hangs_up() -> None:
    channel = SimulatedChannel(spec=HANGUP_SPEC, keypresses=[Keypress("", "hangup", 1.0)])
    results = replay(channel, transcripts.HANGUP)
    for line, recorded, simulated in results:
        assert simulated == recorded, line
    assert channel.hung_up
    assert channel.variables == {"X": "1"}


def test_replaying_recording_04() -> None:
    channel = SimulatedChannel(spec=NO_SCRIPT_SPEC)
    [(line, recorded, simulated)] = replay(channel, transcripts.NO_SCRIPT)
    assert line == "GET VARIABLE CALLERID(num)"
    assert simulated == recorded == ["200 result=1 (anonymous)"]


def test_prompts_are_marked_and_take_the_callers_time() -> None:
    channel = SimulatedChannel(keypresses=[Keypress("12", "#", 1.5)])
    outcome = channel.execute(commands.get_data("beep", 3000, 4).line)
    assert outcome.prompt
    assert outcome.duration == 1.5
    assert not channel.execute("NOOP").prompt


# -- GET DATA -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("press", "max_digits", "reply"),
    [
        (Keypress("1234"), 4, "200 result=1234"),
        (Keypress("0012"), 4, "200 result=0012"),
        (Keypress("*9"), 4, "200 result=*9"),
        (Keypress(""), 4, "200 result="),
        (Keypress("12", "timeout"), 4, "200 result=12 (timeout)"),
        (Keypress("", "timeout"), 4, "200 result= (timeout)"),
        (Keypress("123456", "timeout"), 4, "200 result=1234"),  # max digits reached first
        (Keypress("123456"), 3, "200 result=123"),
        (Keypress("12", "hangup"), 4, "200 result=-1"),
    ],
)
def test_get_data_replies(press: Keypress, max_digits: int, reply: str) -> None:
    channel = SimulatedChannel(keypresses=[press])
    outcome = channel.execute(commands.get_data("beep", 3000, max_digits).line)
    assert outcome.lines == [reply]
    assert channel.hung_up is (press.end == "hangup")


def test_get_data_with_nothing_scripted_times_out_empty() -> None:
    channel = SimulatedChannel()
    assert channel.execute("GET DATA beep 3000 4").lines == ["200 result= (timeout)"]


# -- a dead channel --------------------------------------------------------------------------------


@pytest.fixture
def dead() -> SimulatedChannel:
    channel = SimulatedChannel(keypresses=[Keypress("", "hangup")])
    assert channel.execute("ANSWER").lines == ["200 result=0"]
    assert channel.execute("GET DATA beep 8000 4").lines == ["200 result=-1"]
    assert channel.hung_up
    return channel


@pytest.mark.parametrize(
    "line",
    [
        "GET DATA beep 3000 4",
        'STREAM FILE beep ""',
        "WAIT FOR DIGIT 100",
        'SAY DIGITS 12 ""',
        "ANSWER",
        "CHANNEL STATUS",  # not flagged for dead channels in res_agi's command table
        "HANGUP",  # idem
    ],
)
def test_a_dead_channel_refuses_channel_commands(dead: SimulatedChannel, line: str) -> None:
    assert dead.execute(line).lines == [DEAD]


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        ("GET VARIABLE CALLERID(num)", "200 result=1 (0899990988)"),
        ('SET VARIABLE X "1"', "200 result=1"),
        ("NOOP", "200 result=0"),
        ('VERBOSE "bye" 1', "200 result=1"),
        ("GET FULL VARIABLE ${EXTEN}", "200 result=1 (19001234)"),
        ("EXEC MSet A=1", "200 result=0"),
    ],
)
def test_a_dead_channel_still_answers_variable_commands(
    dead: SimulatedChannel, line: str, reply: str
) -> None:
    assert dead.execute(line).lines == [reply]


def test_unknown_commands_are_510_even_on_a_dead_channel(dead: SimulatedChannel) -> None:
    assert dead.execute("FOO BAR").lines == ["510 Invalid or unknown command"]


# -- EXEC, MSet and substitution ------------------------------------------------------------------


def test_mset_sets_every_pair_in_one_round_trip() -> None:
    channel = SimulatedChannel()
    line = "EXEC MSet SMARTROUTING_DEST1=207,SMARTROUTING_DEST2=209,__INHERITED=yes,EMPTY="
    assert channel.execute(line).lines == ["200 result=0"]
    assert channel.assignments == [
        ("SMARTROUTING_DEST1", "207"),
        ("SMARTROUTING_DEST2", "209"),
        ("INHERITED", "yes"),
        ("EMPTY", ""),
    ]


def test_mset_splits_on_commas_the_router_did_not_mean() -> None:
    """Why the router only puts plain tokens in MSet: a comma in a value cuts it short."""
    channel = SimulatedChannel()
    channel.execute('EXEC MSet "NAME=Smith, John,STATUS=OK"')
    assert channel.variables == {"NAME": "Smith", "STATUS": "OK"}  # " John" has no '='
    channel = SimulatedChannel()
    channel.execute('EXEC MSet "NAME=\\"Smith, John\\",STATUS=OK"')
    assert channel.variables == {"NAME": "Smith, John", "STATUS": "OK"}  # quotes group, then go
    channel = SimulatedChannel()
    channel.execute('EXEC MSet "A=x,y,B=1"')
    assert channel.variables == {"A": "x", "B": "1"}  # "y" has no '=' and is ignored


def test_without_mset_exec_reports_minus_two() -> None:
    channel = SimulatedChannel(mset_available=False)
    assert channel.execute("EXEC MSet A=1").lines == ["200 result=-2"]
    assert channel.variables == {}


def test_agiexecfull_substitutes_exec_data_but_not_set_variable() -> None:
    for agiexecfull, expected in ((False, "${EXTEN}"), (True, "19001234")):
        channel = SimulatedChannel(agiexecfull=agiexecfull)
        channel.execute("EXEC Set A=${EXTEN}")
        channel.execute('SET VARIABLE B "${EXTEN}"')
        assert channel.variables == {"A": expected, "B": "${EXTEN}"}


def test_device_states() -> None:
    channel = SimulatedChannel(device_states={"Local/104@agents": "INUSE"})
    assert channel.execute("GET FULL VARIABLE ${DEVICE_STATE(Local/104@agents)}").lines == [
        "200 result=1 (INUSE)"
    ]
    assert channel.execute("GET FULL VARIABLE ${DEVICE_STATE(SIP/999)}").lines == [
        "200 result=1 ()"
    ]


def test_channel_status_follows_answer() -> None:
    channel = SimulatedChannel()
    assert channel.execute("CHANNEL STATUS").lines == ["200 result=4"]
    channel.execute("ANSWER")
    assert channel.execute("CHANNEL STATUS").lines == ["200 result=6"]


# -- parse_args: res_agi's word splitting ----------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("GET VARIABLE X", ["GET", "VARIABLE", "X"]),
        ("  NOOP   ", ["NOOP"]),
        ("", []),
        ("   ", []),
        ("a\tb \t c", ["a", "b", "c"]),
        ('SET VARIABLE X "two words"', ["SET", "VARIABLE", "X", "two words"]),
        ('"tab\tinside"', ["tab\tinside"]),
        ('a "" b', ["a", "", "b"]),
        ('a ""', ["a", ""]),
        ('""', [""]),
        ('abc"def"', ["abcdef"]),
        ('abc"d e"f g', ["abcd ef", "g"]),
        ('"abc"def', ["abcdef"]),
        ('"a b"" c"', ["a b c"]),
        ('say \\"hi\\"', ["say", '"hi"']),
        ('"say \\"hi\\""', ['say "hi"']),
        ("a\\ b c", ["a b", "c"]),
        ("a\\\tb", ["a\tb"]),
        ("back\\\\slash", ["back\\slash"]),
        ('"back\\\\"', ["back\\"]),
        ("\\x\\y", ["xy"]),
        ('"unterminated quote', ["unterminated quote"]),
        ("trailing\\", ["trailing"]),
        ("${CALLERID(num)}-${EXTEN}", ["${CALLERID(num)}-${EXTEN}"]),
        ("Nguyễn Văn", ["Nguyễn", "Văn"]),
    ],
)
def test_parse_args(line: str, words: list[str]) -> None:
    assert parse_args(line) == words


def test_parse_args_keeps_at_most_127_words() -> None:
    words = [f"w{n}" for n in range(200)]
    parsed = parse_args(" ".join(words))
    assert len(parsed) == MAX_ARGS - 1 == 127
    assert parsed == words[:127]


def test_parse_args_cap_drops_the_rest_of_the_line() -> None:
    line = " ".join(["w"] * 127) + " dropped also\\ dropped"
    assert parse_args(line) == ["w"] * 127


# -- separate_app_args: how applications split their data ------------------------------------------


@pytest.mark.parametrize(
    ("data", "delim", "args"),
    [
        ("a,b,c", ",", ["a", "b", "c"]),
        ("", ",", []),
        ("a", ",", ["a"]),
        ("a,", ",", ["a", ""]),
        ("a,b,", ",", ["a", "b", ""]),
        (",", ",", ["", ""]),
        ("a,,b", ",", ["a", "", "b"]),
        ("f(a,b),c", ",", ["f(a,b)", "c"]),
        ("x[1,2],y", ",", ["x[1,2]", "y"]),
        ("f(a[1,2],b),c", ",", ["f(a[1,2],b)", "c"]),
        ("a),b", ",", ["a)", "b"]),
        ('"a,b",c', ",", ["a,b", "c"]),
        ('a"b,c"d,e', ",", ["ab,cd", "e"]),
        ("a\\,b,c", ",", ["a,b", "c"]),
        ("a\\\\,b", ",", ["a\\", "b"]),
        ('a\\"b,c', ",", ['a"b', "c"]),
        ("a(,b", ",", ["a(,b"]),  # an open parenthesis swallows the rest
        ("NAME=x=y", "=", ["NAME", "x", "y"]),
        ('"a,b"', '"', ["", "a,b", ""]),
    ],
)
def test_separate_app_args(data: str, delim: str, args: list[str]) -> None:
    assert separate_app_args(data, delim) == args


def test_separate_app_args_with_two_slots_keeps_the_rest_in_the_second() -> None:
    assert separate_app_args("NAME=x=y", "=", 2) == ["NAME", "x=y"]
    assert separate_app_args("NAME=", "=", 2) == ["NAME", ""]
    assert separate_app_args("NAME", "=", 2) == ["NAME"]


def test_separate_app_args_cap_puts_the_rest_in_the_last_unparsed() -> None:
    data = ",".join(str(n) for n in range(30))
    args = separate_app_args(data)
    assert len(args) == 24
    assert args[:23] == [str(n) for n in range(23)]
    assert args[23] == ",".join(str(n) for n in range(23, 30))
    quoted = ",".join(["x"] * 23) + ',"q",\\r'
    assert separate_app_args(quoted)[-1] == '"q",\\r'  # past the cap nothing is removed
