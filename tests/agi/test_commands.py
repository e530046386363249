"""Command lines: the builders reproduce the recorded bytes, and refuse what cannot be sent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fastagi_router.agi import Command, commands
from fastagi_router.agi.commands import AGI_BUF_LEN, MSET_MAX_PAIRS
from fastagi_router.errors import LocalProtocolError
from fastagi_router.simulator import SimulatedChannel, parse_args
from tests import transcripts

DESTS = [
    ("SMARTROUTING_DEST1", "207"),
    ("SMARTROUTING_DEST2", "209"),
    ("SMARTROUTING_DEST3", "214"),
    ("SMARTROUTING_DEST4", "216"),
]

# Every command line of recordings 01, 02 and 04, and the builder call that makes it.
BUILT: list[tuple[str, Command]] = [
    ("GET VARIABLE CALLERID(num)", commands.get_variable("CALLERID(num)")),
    ("GET VARIABLE NOT_SET_VAR", commands.get_variable("NOT_SET_VAR")),
    (
        "GET FULL VARIABLE ${CALLERID(num)}-${EXTEN}",
        commands.get_full_variable("${CALLERID(num)}-${EXTEN}"),
    ),
    (
        'SET VARIABLE SMARTROUTING_STATUS "CUSTOMER"',
        commands.set_variable("SMARTROUTING_STATUS", "CUSTOMER"),
    ),
    (
        'SET VARIABLE SMARTROUTING_NAME "O\'Brien \\"VIP\\" client"',
        commands.set_variable("SMARTROUTING_NAME", 'O\'Brien "VIP" client'),
    ),
    ("GET VARIABLE SMARTROUTING_NAME", commands.get_variable("SMARTROUTING_NAME")),
    ('SET VARIABLE SMARTROUTING_EMPTY ""', commands.set_variable("SMARTROUTING_EMPTY", "")),
    (
        'SET VARIABLE SMARTROUTING_UTF8 "Nguyễn Văn A"',
        commands.set_variable("SMARTROUTING_UTF8", "Nguyễn Văn A"),
    ),
    ("GET VARIABLE SMARTROUTING_UTF8", commands.get_variable("SMARTROUTING_UTF8")),
    (
        "EXEC MSet SMARTROUTING_DEST1=207,SMARTROUTING_DEST2=209,"
        "SMARTROUTING_DEST3=214,SMARTROUTING_DEST4=216",
        commands.mset(DESTS),
    ),
    ("GET VARIABLE SMARTROUTING_DEST3", commands.get_variable("SMARTROUTING_DEST3")),
    ('VERBOSE "router says hello" 1', commands.verbose("router says hello", 1)),
    ("NOOP", commands.noop()),
    # deliberately malformed in the recording, to draw 510 and 520 replies
    ("FOO BAR", commands.raw("FOO BAR")),
    ("SET VARIABLE", commands.raw("SET VARIABLE")),
    ("GET DATA", commands.raw("GET DATA")),
    ("ANSWER", commands.answer()),
    ("GET DATA beep 3000 4", commands.get_data("beep", 3000, 4)),
    ("GET DATA silence/1 2000 4", commands.get_data("silence/1", 2000, 4)),
    ('STREAM FILE beep "0123456789*#"', commands.stream_file("beep", "0123456789*#")),
    ("WAIT FOR DIGIT 100", commands.wait_for_digit(100)),
    ('SAY DIGITS 12 ""', commands.say_digits("12", "")),
    ("CHANNEL STATUS", commands.channel_status()),
    (
        "GET FULL VARIABLE ${EXTENSION_STATE(104@agents)}",
        commands.get_full_variable("${EXTENSION_STATE(104@agents)}"),
    ),
    (
        "GET FULL VARIABLE ${DEVICE_STATE(Local/104@agents)}",
        commands.get_full_variable("${DEVICE_STATE(Local/104@agents)}"),
    ),
    (
        'SET VARIABLE __SMARTROUTING_INHERIT "yes"',
        commands.set_variable("__SMARTROUTING_INHERIT", "yes"),
    ),
    # 02
    ("GET DATA beep 8000 4", commands.get_data("beep", 8000, 4)),
    ('SET VARIABLE X "1"', commands.set_variable("X", "1")),
]


def recorded_out_entries() -> dict[str, bytes]:
    names = (transcripts.LOOKUP, transcripts.HANGUP, transcripts.NO_SCRIPT)
    return {
        entry.data.removesuffix("\n"): entry.raw
        for name in names
        for entry in transcripts.load(name)
        if entry.dir == "out"
    }


RECORDED_OUT = recorded_out_entries()


def test_every_recorded_command_has_a_builder() -> None:
    assert set(RECORDED_OUT) == {line for line, _ in BUILT}


@pytest.mark.parametrize(("line", "command"), BUILT, ids=[line for line, _ in BUILT])
def test_builder_reproduces_the_recorded_bytes(line: str, command: Command) -> None:
    assert command.encode() == RECORDED_OUT[line]
    assert command.line == line


def test_set_variables_of_plain_values_is_the_recorded_mset() -> None:
    [command] = commands.set_variables(DESTS)
    assert command.encode() == RECORDED_OUT[commands.mset(DESTS).line]


@pytest.mark.parametrize(
    ("command", "verb", "channel_time"),
    [
        (commands.answer(), "ANSWER", True),
        (commands.get_data("beep", 3000, 4), "GET DATA", True),
        (commands.stream_file("beep"), "STREAM FILE", True),
        (commands.wait_for_digit(100), "WAIT FOR DIGIT", True),
        (commands.say_digits("12"), "SAY DIGITS", True),
        (commands.noop(), "NOOP", False),
        (commands.channel_status(), "CHANNEL STATUS", False),
        (commands.verbose("x"), "VERBOSE", False),
        (commands.get_variable("X"), "GET VARIABLE", False),
        (commands.get_full_variable("${X}"), "GET FULL VARIABLE", False),
        (commands.set_variable("X", "a b"), "SET VARIABLE", False),
        (commands.mset([("X", "1")]), "EXEC MSet", False),
        (commands.exec_app("Wait", "1"), "EXEC Wait", False),
    ],
)
def test_verb_and_channel_time(command: Command, verb: str, channel_time: bool) -> None:
    """Only commands whose reply waits on the caller are channel time."""
    assert command.verb == verb
    assert command.channel_time is channel_time


def test_exec_app() -> None:
    assert commands.exec_app("Wait", "1").line == "EXEC Wait 1"
    assert commands.exec_app("NoOp").line == "EXEC NoOp"
    assert commands.exec_app("Log", "NOTICE,a b").line == 'EXEC Log "NOTICE,a b"'


# -- what can never be sent ---------------------------------------------------------------------

UNSENDABLE = ["\r", "\n", "\x00"]
PLACES = ["{c}", "a{c}", "{c}b", "a{c}b", "a b{c}"]


@pytest.mark.parametrize("char", UNSENDABLE, ids=["CR", "LF", "NUL"])
@pytest.mark.parametrize("place", PLACES)
def test_cr_lf_nul_are_refused_everywhere(char: str, place: str) -> None:
    text = place.format(c=char)
    builders = [
        lambda: commands.raw(text),
        lambda: commands.quote(text),
        lambda: commands.word(text),
        lambda: commands.set_variable("X", text),
        lambda: commands.verbose(text),
        lambda: commands.get_full_variable(text),
        lambda: commands.exec_app("NoOp", text),
        lambda: Command(text),
        lambda: Command("NOOP" + text),
    ]
    for build in builders:
        with pytest.raises(LocalProtocolError):
            build()


@pytest.mark.parametrize(
    "build",
    [
        lambda: commands.get_variable("A B"),
        lambda: commands.get_variable('A"'),
        lambda: commands.get_variable(""),
        lambda: commands.get_variable("X\n"),
        lambda: commands.set_variable("bad name", "x"),
        lambda: commands.set_variable("A\\", "x"),
        lambda: commands.get_data("file with space", 3000, 4),
        lambda: commands.get_data('"beep"', 3000, 4),
        lambda: commands.get_data("beep", -1, 4),
        lambda: commands.get_data("beep", 3000, -1),
        lambda: commands.stream_file("beep", "abc"),
        lambda: commands.stream_file("be ep"),
        lambda: commands.say_digits("12a"),
        lambda: commands.say_digits("12", "x"),
        lambda: commands.exec_app("Bad App", "x"),
        lambda: commands.exec_app("", "x"),
        lambda: commands.verbose("x", -1),
    ],
)
def test_builders_refuse_bad_arguments(build: Callable[[], Command]) -> None:
    with pytest.raises(LocalProtocolError):
        build()


def test_a_line_of_8191_bytes_with_its_newline_is_accepted() -> None:
    command = commands.raw("X" * (AGI_BUF_LEN - 2))
    assert len(command.encode()) == AGI_BUF_LEN - 1


def test_a_line_of_8192_bytes_with_its_newline_is_refused() -> None:
    with pytest.raises(LocalProtocolError, match="8192"):
        commands.raw("X" * (AGI_BUF_LEN - 1))


def test_set_variable_at_the_length_limit() -> None:
    overhead = len('SET VARIABLE X ""\n')
    accepted = commands.set_variable("X", "v" * (AGI_BUF_LEN - 1 - overhead))
    assert len(accepted.encode()) == AGI_BUF_LEN - 1
    with pytest.raises(LocalProtocolError):
        commands.set_variable("X", "v" * (AGI_BUF_LEN - overhead))


def test_length_is_counted_in_utf8_bytes() -> None:
    three_bytes = "ễ"
    assert len(three_bytes.encode()) == 3
    fits = three_bytes * ((AGI_BUF_LEN - 2) // 3)  # 8190 bytes, 2730 characters
    assert len(commands.raw(fits).encode()) == AGI_BUF_LEN - 1
    with pytest.raises(LocalProtocolError):
        commands.raw(fits + "x")  # 2731 characters, but 8191 bytes before the newline
    with pytest.raises(LocalProtocolError):
        commands.set_variable("X", three_bytes * 2725)  # 2742 characters; 8193 bytes sent


def test_escaping_counts_towards_the_length() -> None:
    overhead = len('SET VARIABLE X ""\n')
    quotes = '"' * ((AGI_BUF_LEN - 1 - overhead) // 2 + 1)  # each one sent as two bytes
    assert len(quotes) + overhead < AGI_BUF_LEN - 1
    assert len(commands.set_variable("X", quotes[:-1]).encode()) == AGI_BUF_LEN - 2
    with pytest.raises(LocalProtocolError):
        commands.set_variable("X", quotes)


def test_lone_surrogates_are_refused_as_unsendable() -> None:
    """Text from JSON may hold a lone surrogate; it has no UTF-8 form, so it cannot be sent."""
    with pytest.raises(LocalProtocolError):
        commands.set_variable("X", "a\ud800b")
    with pytest.raises(LocalProtocolError):
        commands.verbose("\udfff")


# -- quoting ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("", '""'),
        ("plain", '"plain"'),
        ('a "b"', '"a \\"b\\""'),
        ("back\\slash", '"back\\\\slash"'),
        ('\\"', '"\\\\\\""'),
        ("tab\there", '"tab\there"'),
        ("${EXTEN}", '"${EXTEN}"'),
    ],
)
def test_quote(value: str, quoted: str) -> None:
    assert commands.quote(value) == quoted
    assert parse_args(commands.quote(value)) == [value]


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("plain", "plain"),
        ("${CALLERID(num)}-${EXTEN}", "${CALLERID(num)}-${EXTEN}"),
        ("", '""'),
        ("two words", '"two words"'),
        ("tab\t", '"tab\t"'),
        ('q"', '"q\\""'),
        ("b\\", '"b\\\\"'),
    ],
)
def test_word_is_bare_only_when_plain(value: str, sent: str) -> None:
    assert commands.word(value) == sent
    assert parse_args(commands.word(value)) == [value]


# -- MSet ---------------------------------------------------------------------------------------

MSET_SAFE_VALUES = ["", "207", "+84901234567", "sip:agent@pbx.example", "a/b", "1.5", "*#", "A-Z_9"]
MSET_UNSAFE_VALUES = [
    ",",
    "a,b",
    "(",
    ")",
    "f(x)",
    "$",
    "${EXTEN}",
    "$[1+1]",
    '"',
    "'",
    " ",
    "two words",
    "=",
    "a=b",
    "\\",
    "[",
    "]",
    "|",
    "&",
    ";",
    "\t",
    "{",
    "}",
    "é",
]


@pytest.mark.parametrize("value", MSET_SAFE_VALUES)
def test_mset_takes_plain_tokens(value: str) -> None:
    assert commands.mset_safe(value)
    assert commands.mset([("X", value)]).line == f"EXEC MSet X={value}"


@pytest.mark.parametrize("value", MSET_UNSAFE_VALUES)
def test_mset_refuses_values_it_would_change(value: str) -> None:
    assert not commands.mset_safe(value)
    with pytest.raises(LocalProtocolError):
        commands.mset([("A", "1"), ("X", value)])


@pytest.mark.parametrize("name", ["bad name", "A-B", "X(1)", "CDR(userfield)", "", "A=B", "A,B"])
def test_mset_refuses_names_it_would_change(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        commands.mset([(name, "1")])


def test_mset_takes_up_to_24_pairs() -> None:
    pairs = [(f"V{n}", str(n)) for n in range(MSET_MAX_PAIRS)]
    command = commands.mset(pairs)
    channel = SimulatedChannel()
    channel.execute(command.line)
    assert channel.variables == dict(pairs)
    with pytest.raises(LocalProtocolError, match="24"):
        commands.mset([*pairs, ("V24", "24")])
    with pytest.raises(LocalProtocolError):
        commands.mset([])


# -- set_variables ------------------------------------------------------------------------------


def run(lines: list[Command]) -> SimulatedChannel:
    channel = SimulatedChannel()
    for command in lines:
        assert channel.execute(command.line).lines[0].startswith("200 "), command
    return channel


def test_set_variables_all_plain_is_one_mset_with_the_last_last() -> None:
    variables = [("A", "1"), ("B", "2"), ("SMARTROUTING_STATUS", "CUSTOMER")]
    [command] = commands.set_variables(variables)
    assert command.line == "EXEC MSet A=1,B=2,SMARTROUTING_STATUS=CUSTOMER"
    channel = run([command])
    assert channel.assignments == variables


def test_set_variables_sends_unsafe_values_first_one_by_one() -> None:
    variables = [("A", "1"), ("NAME", 'O\'Brien "VIP"'), ("B", "x,y"), ("STATUS", "OK")]
    sent = commands.set_variables(variables)
    assert [c.line for c in sent] == [
        'SET VARIABLE NAME "O\'Brien \\"VIP\\""',
        'SET VARIABLE B "x,y"',
        "EXEC MSet A=1,STATUS=OK",
    ]
    channel = run(sent)
    assert channel.variables == dict(variables)
    assert channel.assignments[-1] == ("STATUS", "OK")


def test_set_variables_with_an_unsafe_last_value_sets_it_last() -> None:
    variables = [("A", "1"), ("B", "two words"), ("STATUS", "needs (quoting)")]
    sent = commands.set_variables(variables)
    assert [c.line for c in sent] == [
        'SET VARIABLE B "two words"',
        "EXEC MSet A=1",
        'SET VARIABLE STATUS "needs (quoting)"',
    ]
    channel = run(sent)
    assert channel.variables == dict(variables)
    assert channel.assignments[-1] == ("STATUS", "needs (quoting)")


def test_set_variables_single() -> None:
    assert [c.line for c in commands.set_variables([("A", "1")])] == ["EXEC MSet A=1"]
    assert [c.line for c in commands.set_variables([("A", "a b")])] == ['SET VARIABLE A "a b"']


@pytest.mark.parametrize("count", [24, 25, 26, 48, 49, 60])
def test_set_variables_splits_more_than_24_pairs(count: int) -> None:
    variables = [(f"V{n:02}", str(n)) for n in range(count)]
    sent = commands.set_variables(variables)
    assert all(c.verb == "EXEC MSet" for c in sent)
    assert len(sent) == -(-count // MSET_MAX_PAIRS)  # ceil
    for command in sent:
        assert 1 <= command.line.count("=") <= MSET_MAX_PAIRS
    assert sent[-1].line.endswith(f"V{count - 1:02}={count - 1}")
    channel = run(sent)
    assert channel.assignments == variables


def test_set_variables_mixed_many() -> None:
    variables = [(f"V{n:02}", str(n) if n % 3 else f"val {n}") for n in range(40)]
    variables.append(("SMARTROUTING_STATUS", "CUSTOMER"))
    sent = commands.set_variables(variables)
    unsafe = [c for c in sent if c.verb == "SET VARIABLE"]
    assert len(unsafe) == 14
    assert sent[: len(unsafe)] == unsafe
    assert sent[-1].verb == "EXEC MSet"
    channel = run(sent)
    assert channel.variables == dict(variables)
    assert channel.assignments[-1] == ("SMARTROUTING_STATUS", "CUSTOMER")
