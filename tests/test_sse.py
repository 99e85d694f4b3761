"""Tests of the server-sent-events layer: line splitting and event parsing (docs/wire-formats.md §5.5)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.providers.sse import (
    SSEDecodeError,
    SSEDecoder,
    SSELineSplitter,
    aiter_sse,
    aiter_sse_bytes,
    aiter_sse_lines,
    iter_sse,
    iter_sse_lines,
)
from tests.helpers.pieces import cut

Event = tuple[str | None, str]


def serialise(events: list[Event], newline: str = "\n", comments: bool = False) -> str:
    """SSE text for ``events``: data split into one line per ``\\n``, blank line after each."""
    out: list[str] = []
    for name, data in events:
        if comments:
            out.append(": keep-alive")
        if name is not None:
            out.append(f"event: {name}")
        out.extend(f"data: {line}" for line in data.split("\n"))
        out.append("")
    return "".join(line + newline for line in out)


def parse_bytes(pieces: list[bytes]) -> list[Event]:
    return list(iter_sse(iter_sse_lines(pieces)))


# Text without line-end characters (CR and LF only end lines in SSE; the other Unicode line
# separators are ordinary characters and must survive).
line_text = st.text(
    alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]),
    max_size=30,
)
event_names = st.none() | line_text.filter(lambda s: not s.startswith(" "))
event_data = st.lists(line_text, min_size=1, max_size=4).map("\n".join)
events_strategy = st.lists(st.tuples(event_names, event_data), max_size=8)


@given(
    events=events_strategy,
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    comments=st.booleans(),
    sizes=st.lists(st.integers(min_value=1, max_value=9), max_size=60),
)
@settings(max_examples=300, deadline=None)
def test_events_round_trip_through_any_split(
    events: list[Event], newline: str, comments: bool, sizes: list[int]
) -> None:
    data = serialise(events, newline, comments).encode()
    assert parse_bytes(list(cut(data, sizes))) == events


@given(events=events_strategy, sizes=st.lists(st.integers(1, 9), max_size=60))
@settings(max_examples=100, deadline=None)
def test_the_last_event_needs_no_trailing_blank_line(events: list[Event], sizes: list[int]) -> None:
    text = serialise(events).removesuffix("\n\n") if events else ""
    assert parse_bytes(list(cut(text.encode(), sizes))) == events


@given(events=events_strategy, sizes=st.lists(st.integers(1, 9), max_size=60))
@settings(max_examples=100, deadline=None)
def test_through_httpx_byte_stream(events: list[Event], sizes: list[int]) -> None:
    data = serialise(events, "\r\n").encode()
    response = httpx.Response(200, content=iter(list(cut(data, sizes))))
    assert list(iter_sse(iter_sse_lines(response.iter_bytes()))) == events


def test_reference_example_from_providers_md() -> None:
    text = (
        "event: message_start\n"
        'data: {"type":"message_start"}\n'
        "\n"
        ": OPENROUTER PROCESSING\n"
        "\n"
        "data: first\n"
        "data: second\n"
        "\n"
        "data:no-space\n"
        "\n"
        "data: [DONE]"
    )
    assert list(iter_sse(text.split("\n"))) == [
        ("message_start", '{"type":"message_start"}'),
        (None, "first\nsecond"),
        (None, "no-space"),
        (None, "[DONE]"),
    ]


def test_fields_that_carry_nothing_are_ignored() -> None:
    lines = ["id: 7", "retry: 1000", "event: ping", "", "unknown: x", "data: kept", ""]
    # "event: ping" with no data is not an event; its name does not leak into the next one.
    assert list(iter_sse(lines)) == [(None, "kept")]


def test_empty_data_lines_are_events() -> None:
    assert list(iter_sse(["data:", "", "data", "data", ""])) == [(None, ""), (None, "\n")]


def test_only_one_leading_space_is_removed() -> None:
    assert list(iter_sse(["data:  two", ""])) == [(None, " two")]


def test_unicode_line_separators_stay_inside_the_data() -> None:
    # httpx's iter_lines() would split this line at U+2028 / U+0085 and break the JSON.
    payload = '{"text": "a\u2028b\u2029c\x85d\x0be"}'
    body = f"data: {payload}\n\n".encode()
    assert parse_bytes([body]) == [(None, payload)]


def test_a_multibyte_character_split_across_pieces() -> None:
    body = "data: Göteborg ☃\n\n".encode()
    pieces = [body[i : i + 1] for i in range(len(body))]
    assert parse_bytes(pieces) == [(None, "Göteborg ☃")]


def test_crlf_split_between_pieces_is_one_line_end() -> None:
    assert parse_bytes([b"data: a\r", b"\ndata: b\r", b"\n\r", b"\n"]) == [(None, "a\nb")]


def test_a_byte_order_mark_is_dropped() -> None:
    assert parse_bytes([b"\xef\xbb\xbfdata: x\n\n"]) == [(None, "x")]


def test_splitter_and_decoder_step_by_step() -> None:
    splitter = SSELineSplitter()
    assert splitter.feed(b"data: he") == []
    assert splitter.feed("llo\r") == ["data: hello"]
    assert splitter.feed(b"\n") == []
    assert splitter.feed(b"\n") == [""]
    assert splitter.flush() == []
    decoder = SSEDecoder()
    assert decoder.feed("data: hello") is None
    assert decoder.feed("") == (None, "hello")
    assert decoder.feed("event: e") is None
    assert decoder.feed("data: x") is None
    assert decoder.flush() == ("e", "x")
    assert decoder.flush() is None


async def _agen(items: list[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


async def _alines(items: list[str]) -> AsyncIterator[str]:
    for item in items:
        yield item


@pytest.mark.asyncio
async def test_async_twins_agree_with_the_sync_ones() -> None:
    events: list[Event] = [("a", "1"), (None, "2\n3")]
    data = serialise(events, "\r\n", comments=True).encode()
    pieces = list(cut(data, [1, 2, 3, 5, 8, 13]))
    assert [e async for e in aiter_sse_bytes(_agen(pieces))] == events
    lines = [line async for line in aiter_sse_lines(_agen(pieces))]
    assert lines == list(iter_sse_lines(pieces))
    assert [e async for e in aiter_sse(_alines(lines))] == events
    # Lines that still carry their line end (a caller's own splitting) parse the same.
    assert [e async for e in aiter_sse(_alines([line + "\r\n" for line in lines]))] == events


# Bytes that look like a stream, with arbitrary bytes mixed in (some not UTF-8).
stream_bytes = st.lists(
    st.sampled_from(
        [
            b"data: ",
            b"data:",
            b"event: ",
            b": ",
            b"id: 1",
            b"\n",
            b"\r\n",
            b"\r",
            b"x",
            b"{}",
            "é".encode(),
            "☃".encode(),
            b"\xef\xbb\xbf",
            b"\xff",
            b"\xe2\x98",
            b"\x80",
        ]
    )
    | st.binary(max_size=6),
    max_size=30,
).map(b"".join)


@given(data=st.binary(max_size=200) | stream_bytes, sizes=st.lists(st.integers(1, 9), max_size=40))
@settings(max_examples=2000, deadline=None)
def test_any_bytes_give_events_or_a_decode_error(data: bytes, sizes: list[int]) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        with pytest.raises(SSEDecodeError) as info:
            parse_bytes(list(cut(data, sizes)))
        assert info.value.position == exc.start  # the offset of the first bad byte
        return
    events = parse_bytes(list(cut(data, sizes)))
    # The same events as the text parsed whole (one leading byte-order mark is dropped).
    assert events == list(iter_sse(iter_sse_lines([text])))
    for name, payload in events:
        assert isinstance(payload, str) and (name is None or isinstance(name, str))


def test_bytes_that_are_not_utf8_raise_with_their_offset() -> None:
    splitter = SSELineSplitter()
    assert splitter.feed(b"data: caf\xc3") == []  # half a character: wait for the rest
    with pytest.raises(SSEDecodeError, match="invalid UTF-8 at byte 9") as info:
        splitter.feed(b"(\n\n")
    assert info.value.position == 9
    with pytest.raises(SSEDecodeError, match="at byte 6"):
        list(iter_sse_lines([b"data: \xe2\x98"]))  # cut off inside a character at the end


def test_replacement_is_still_available() -> None:
    splitter = SSELineSplitter(errors="replace")
    assert splitter.feed(b"data: \xff\n") == ["data: \ufffd"]


def test_the_decoder_counts_the_events_it_delivers() -> None:
    decoder = SSEDecoder()
    for line in ["data: a", "", ": comment", "", "event: x", "", "data: b", ""]:
        decoder.feed(line)
    assert decoder.events == 2
