"""The OpenAI wire format without a network: SSE framing both ways, request validation."""

from __future__ import annotations

import json

import pytest

from core.errors import InvalidInput
from core.llm.http import wire
from core.llm.http.remote_errors import error_message
from core.llm.http.sse import DONE, SSEItem, SSEParser, encode_comment, encode_data

STREAM = (
    encode_comment("queue_position=2")
    + encode_data({"choices": [{"delta": {"content": "héllo ☃"}}]})
    + b": keep-alive\r\n\r\n"
    + b'data:{"a":1}\r\n\r\n'
    + b"event: ignored\ndata: line one\ndata: line two\n\n"
    + encode_data(DONE)
)
EXPECTED = [
    SSEItem(comment="queue_position=2"),
    SSEItem(
        data=json.dumps({"choices": [{"delta": {"content": "héllo ☃"}}]}, separators=(",", ":"))
    ),
    SSEItem(comment="keep-alive"),
    SSEItem(data='{"a":1}'),
    SSEItem(data="line one\nline two"),
    SSEItem(data=DONE),
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(STREAM)])
def test_sse_parser_survives_any_read_boundary(size):
    parser = SSEParser()
    items = []
    for i in range(0, len(STREAM), size):  # splits lines, CRLF pairs and UTF-8 characters
        items += parser.feed(STREAM[i : i + size])
    assert items + parser.close() == EXPECTED


def test_sse_parser_handles_bare_cr_and_a_missing_final_blank_line():
    parser = SSEParser()
    assert parser.feed(b"data: a\r\rdata: b") == [SSEItem(data="a")]
    assert parser.close() == [SSEItem(data="b")]


def body(**extra):
    return {"messages": [{"role": "user", "content": "hi"}], **extra}


def test_chat_request_defaults_and_extensions():
    call = wire.parse_chat_request(body(), request_id="r1", default_temperature=0.7)
    request = call.request
    assert (request.temperature, request.top_p, request.max_new_tokens) == (0.7, 1.0, None)
    assert request.guild_id is None and request.adapter is None and not call.stream
    call = wire.parse_chat_request(
        body(
            max_tokens=5,
            max_completion_tokens=9,
            stop="END",
            guild_id="123456789012345678",
            stream=True,
            stream_options={"include_usage": True},
            seed=3,
            temperature=0,
            presence_penalty=1.0,
            user="someone",
        ),
        request_id="r2",
    )
    request = call.request
    assert request.max_new_tokens == 9 and request.stop == ("END",) and request.seed == 3
    assert request.guild_id == 123456789012345678 and request.temperature == 0.0
    assert call.stream and call.include_usage and request.request_id == "r2"


def test_adapter_by_field_or_by_model_name_and_content_parts():
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    call = wire.parse_chat_request(
        {
            "model": "guild-7",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": parts},
            ],
        },
        request_id="r",
        adapters=("guild-7",),
    )
    assert call.request.adapter == "guild-7"
    assert [(m.role, m.content) for m in call.request.messages] == [
        ("system", "be brief"),
        ("user", "ab"),
    ]
    call = wire.parse_chat_request(body(model="base", adapter="x"), request_id="r")
    assert call.request.adapter == "x"


@pytest.mark.parametrize(
    "bad, message",
    [
        ("text", "JSON object"),
        ({}, "messages is required"),
        ({"messages": []}, "non-empty list"),
        ({"messages": ["hi"]}, "messages[0] must be an object"),
        ({"messages": [{"role": "tool", "content": "x"}]}, "role must be one of"),
        ({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "text parts"),
        (body(max_tokens=0), "max_tokens must be at least 1"),
        (body(max_tokens=2.5), "max_tokens must be an integer"),
        (body(max_tokens=True), "max_tokens must be an integer"),
        (body(temperature=3), "temperature must be between 0 and 2"),
        (body(top_p=0), "top_p must be greater than 0"),
        (body(frequency_penalty="x"), "frequency_penalty must be a number"),
        (body(stop=["ok", ""]), "stop must be"),
        (body(stream="yes"), "stream must be true or false"),
        (body(guild_id=-1), "guild_id"),
        (body(adapter=5), "adapter must be a string"),
    ],
)
def test_invalid_requests_name_the_field(bad, message):
    with pytest.raises(InvalidInput) as excinfo:
        wire.parse_chat_request(bad, request_id="r")
    assert message in excinfo.value.user_message


def test_error_messages_of_other_servers_are_read():
    assert error_message('{"error": {"message": "too long", "type": "x"}}') == "too long"
    assert error_message('{"object": "error", "message": "vllm says"}') == "vllm says"
    assert error_message('{"error": "tgi says"}') == "tgi says"
    assert error_message("<html>Bad Gateway</html>") == "<html>Bad Gateway</html>"
