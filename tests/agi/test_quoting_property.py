"""Whatever the router sends, Asterisk reads back exactly what was meant.

Asterisk's side is `fastagi_router.simulator`: ``parse_args`` is res_agi's word splitting and
``SimulatedChannel`` runs ``SET VARIABLE`` and ``EXEC MSet`` the way Asterisk does.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fastagi_router.agi import commands
from fastagi_router.simulator import SimulatedChannel, parse_args

PROPERTY = settings(max_examples=500, derandomize=True, deadline=None)

# Any character a command can carry (not CR, LF, NUL, nor lone surrogates), with the ones that
# mean something to parse_args, to the dialplan or to MSet drawn far more often than chance.
ANY_CHAR = st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",))
TRICKY = st.sampled_from(
    ['"', "\\", "\t", " ", "${", "}", "${EXTEN}", "$[1+1]", '\\"', '""', ",", "(", ")", "=", "'"]
)
TEXT = st.lists(st.one_of(ANY_CHAR, TRICKY), max_size=40).map("".join)

MSET_VALUE = st.text(alphabet="ABCxyz0189_.+*#@/:-", max_size=12)
NAME = st.builds(
    "".join,
    st.tuples(
        st.sampled_from(["", "_", "__"]),  # inheritance prefixes; Asterisk strips them
        st.sampled_from("ABCDSX"),
        st.text(alphabet="ABCDSX0123_", max_size=15),
    ),
)


def unique_pairs(
    values: st.SearchStrategy[str], max_size: int
) -> st.SearchStrategy[list[tuple[str, str]]]:
    return st.lists(
        st.tuples(NAME, values),
        min_size=1,
        max_size=max_size,
        unique_by=lambda pair: pair[0].lstrip("_"),
    )


@PROPERTY
@given(value=TEXT)
def test_set_variable_value_is_read_back_as_one_word(value: str) -> None:
    line = commands.set_variable("X", value).line
    assert parse_args(line) == ["SET", "VARIABLE", "X", value]


@PROPERTY
@given(value=TEXT, agiexecfull=st.booleans())
def test_set_variable_stores_the_value_as_is(value: str, agiexecfull: bool) -> None:
    channel = SimulatedChannel(agiexecfull=agiexecfull)
    outcome = channel.execute(commands.set_variable("SMARTROUTING_NAME", value).line)
    assert outcome.lines == ["200 result=1"]
    assert channel.variables == {"SMARTROUTING_NAME": value}


@PROPERTY
@given(message=TEXT, level=st.integers(min_value=0, max_value=4))
def test_verbose_message_is_read_back_as_one_word(message: str, level: int) -> None:
    line = commands.verbose(message, level).line
    assert parse_args(line) == ["VERBOSE", message, str(level)]


@PROPERTY
@given(value=TEXT)
def test_word_is_read_back_as_one_word(value: str) -> None:
    assert parse_args(commands.word(value)) == [value]
    line = commands.get_full_variable(value).line
    assert parse_args(line) == ["GET", "FULL", "VARIABLE", value]


@PROPERTY
@given(value=TEXT)
def test_quote_is_read_back_as_one_word(value: str) -> None:
    assert parse_args("A " + commands.quote(value) + "\tB") == ["A", value, "B"]


@PROPERTY
@given(pairs=unique_pairs(MSET_VALUE, commands.MSET_MAX_PAIRS), agiexecfull=st.booleans())
def test_mset_sets_exactly_those_variables(pairs: list[tuple[str, str]], agiexecfull: bool) -> None:
    channel = SimulatedChannel(agiexecfull=agiexecfull)
    outcome = channel.execute(commands.mset(pairs).line)
    assert outcome.lines == ["200 result=0"]
    expected = [(name.lstrip("_"), value) for name, value in pairs]
    assert channel.assignments == expected
    assert channel.variables == dict(expected)


@PROPERTY
@given(pairs=unique_pairs(st.one_of(MSET_VALUE, TEXT), 40), agiexecfull=st.booleans())
def test_set_variables_sets_everything_and_the_last_one_last(
    pairs: list[tuple[str, str]], agiexecfull: bool
) -> None:
    channel = SimulatedChannel(agiexecfull=agiexecfull)
    for command in commands.set_variables(pairs):
        assert channel.execute(command.line).lines[0].startswith("200 "), command
    expected = [(name.lstrip("_"), value) for name, value in pairs]
    assert channel.variables == dict(expected)
    assert channel.assignments[-1] == expected[-1]
    assert sorted(channel.assignments) == sorted(expected)
