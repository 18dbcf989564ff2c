"""The official Python SDK (PyPI `mcp`) as an agent talking to mcplex, in both protocol eras and across them.

Expects MCPLEX_URL: a sidecar in front of the `everything` example (prefix ""), `math`, and the everything
example again as `old` (pinned to the session era) and `new` (pinned to 2026-07-28), the official
`server-everything` as `se`, a FastMCP server as `fm`, and a server of both eras on v2 of the TypeScript SDK
as `ts`, again as `tsold` (pinned to its sessions), as `tsnew` (pinned to 2026-07-28) and as `tsjson` (its
sessions answering in JSON, only its `ask` tool), and a server on
this SDK whose tool declares `Mcp-Param-*` headers as `ps`, again as `psnew` (pinned to 2026-07-28), and the
everything example once more as `pinned` and `pinnedold` (the session era), both with `pinning: enforce`.
"""

import asyncio
import json
import os

import httpx2

import mcp_types as types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

URL = os.environ["MCPLEX_URL"]
# A second sidecar in tool search mode (toolSearch: math_add visible) over `math` and the everything example `ev`.
SEARCH_URL = os.environ["MCPLEX_SEARCH_URL"]
# `mcplex serve` in front of the official server-everything in stdio mode; the sidecar has it as `sestdio`.
SERVE_URL = os.environ["MCPLEX_SERVE_URL"]


def text_of(result) -> str:
    return result.content[0].text


async def answer_sampling(context, params):
    prompt = params.messages[0].content.text
    return types.CreateMessageResult(
        role="assistant",
        content=types.TextContent(type="text", text=f"echo of {prompt}"),
        model="pytest-model",
        stop_reason="endTurn",
    )


async def answer_elicitation(context, params):
    return types.ElicitResult(action="accept", content={"username": "grace", "email": "grace@example.com"})


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_lists_and_calls_through_mcplex(mode):
    async with Client(URL, mode=mode) as client:
        tools = await client.list_tools()
        names = {tool.name for tool in tools.tools}
        assert {"math_add", "math_divide", "test_simple_text", "echo"} <= names
        assert text_of(await client.call_tool("math_add", {"a": 2, "b": 40})) == "42"
        failed = await client.call_tool("math_divide", {"a": 1, "b": 0})
        assert failed.is_error and "division by zero" in text_of(failed)
        echoed = json.loads(text_of(await client.call_tool("echo", {"nested": {"x-unknown": [1, 2]}})))
        assert echoed["arguments"] == {"nested": {"x-unknown": [1, 2]}}
        resource = await client.read_resource("test://template/7/data")
        assert "Data for ID: 7" in resource.contents[0].text
        prompt = await client.get_prompt("test_prompt_with_arguments", {"arg1": "a", "arg2": "b"})
        assert "arg1='a'" in prompt.messages[0].content.text


@pytest.mark.asyncio
async def test_server_requests_reach_a_legacy_python_client():
    async with Client(URL, mode="legacy", sampling_callback=answer_sampling, elicitation_callback=answer_elicitation) as client:
        sampled = await client.call_tool("test_sampling", {"prompt": "hello from python"})
        assert text_of(sampled) == "LLM response: echo of hello from python"
        elicited = await client.call_tool("test_elicitation", {"message": "name?"})
        assert "grace@example.com" in text_of(elicited)


async def answer_roots(context):
    return types.ListRootsResult(roots=[types.Root(uri="file:///workspace", name="workspace")])


@pytest.mark.asyncio
async def test_a_2026_client_answers_a_session_era_targets_requests_through_input_required():
    # The session-era target asks mid-call; mcplex parks the call and asks this client the 2026-07-28 way.
    async with Client(
        URL, mode="2026-07-28", elicitation_callback=answer_elicitation, sampling_callback=answer_sampling
    ) as client:
        elicited = text_of(await client.call_tool("old_test_elicitation", {"message": "Who are you?"}))
        assert "action=accept" in elicited and "grace" in elicited
        sampled = text_of(await client.call_tool("old_test_sampling", {"prompt": "What is 2+2?"}))
        assert "echo of What is 2+2?" in sampled


@pytest.mark.asyncio
async def test_a_legacy_client_answers_a_modern_targets_input_rounds():
    # The 2026-07-28 target answers input_required twice; mcplex asks this session-era client real requests.
    async with Client(
        URL,
        mode="legacy",
        sampling_callback=answer_sampling,
        elicitation_callback=answer_elicitation,
        list_roots_callback=answer_roots,
    ) as client:
        answer = text_of(await client.call_tool("new_test_input_rounds", {}))
        assert answer == "who=grace; model=echo of Pick a word; roots=1"


async def record_progress(seen, progress, total, message):
    seen.append(progress)


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_the_official_server_everything_works_through_mcplex(mode):
    # server-everything lists its sampling and elicitation tools only to clients that declare those
    # capabilities; mcplex declares them when it fetches lists, and each call carries this client's own.
    async with Client(
        URL, mode=mode, sampling_callback=answer_sampling, elicitation_callback=answer_elicitation
    ) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {"se_echo", "se_get-sum", "se_trigger-long-running-operation", "se_trigger-sampling-request"} <= names
        # The server's sampling request reached this client's callback (its model name comes back).
        sampled = await client.call_tool("se_trigger-sampling-request", {"prompt": "ping", "maxTokens": 10})
        assert "pytest-model" in text_of(sampled), sampled
        assert "hello" in text_of(await client.call_tool("se_echo", {"message": "hello"}))
        assert text_of(await client.call_tool("se_get-sum", {"a": 40, "b": 2})) == "The sum of 40 and 2 is 42."
        seen = []
        done = await client.call_tool(
            "se_trigger-long-running-operation",
            {"duration": 1, "steps": 2},
            progress_callback=lambda p, t, m: record_progress(seen, p, t, m),
        )
        assert "completed" in text_of(done)
        assert len(seen) >= 1, "progress notifications reach the client"


async def answer_name(context, params):
    return types.ElicitResult(action="accept", content={"value": "grace"})


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_fastmcp_server_works_through_mcplex(mode):
    async with Client(URL, mode=mode, elicitation_callback=answer_name) as client:
        assert text_of(await client.call_tool("fm_add", {"a": 2, "b": 40})) == "42"
        asked = text_of(await client.call_tool("fm_ask", {}))
        if mode == "legacy":
            # Its elicitation mid-call reaches this session-era client on the call's stream.
            assert asked == "hello grace"
        else:
            # FastMCP's `ctx.elicit` does not ask 2026-07-28 clients (it has no input_required form);
            # mcplex passes its answer on as it would reach the client directly.
            assert "unavailable on 2026-07-28" in asked


async def answer_username(context, params):
    return types.ElicitResult(action="accept", content={"username": "grace"})


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "auto", "2026-07-28"])
async def test_a_dual_era_typescript_sdk_server_works_in_every_era_and_across_eras(mode):
    # Each answer names the era that served the call: the client's own on the dual-era target `ts`, the
    # pinned one on `tsold` and `tsnew`, where mcplex bridges what the server asks to this client's era.
    client_era = "legacy" if mode == "legacy" else "modern"
    async with Client(
        URL,
        mode=mode,
        elicitation_callback=answer_username,
        sampling_callback=answer_sampling,
        list_roots_callback=answer_roots,
    ) as client:
        for target, era in [("ts", client_era), ("tsold", "legacy"), ("tsnew", "modern")]:
            assert text_of(await client.call_tool(f"{target}_echo", {})) == f"echo ({era})"
            assert text_of(await client.call_tool(f"{target}_confirm", {})) == f"hello grace ({era})"
            # On a session, `ask` sends its elicitation on the session's GET stream, tied to no request.
            where = ", GET stream" if era == "legacy" else ""
            assert text_of(await client.call_tool(f"{target}_ask", {})) == f"hello grace ({era}{where})"
            rounds = text_of(await client.call_tool(f"{target}_rounds", {}))
            assert rounds == f"word=echo of Pick a word; roots=1 ({era})"


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_mcp_param_headers_reach_a_server_that_requires_them(mode):
    # The server refuses a 2026-07-28 call whose Mcp-Param headers are missing or disagree with the body.
    # A 2026-07-28 client sends them (mcplex checks them); for a session-era client calling the pinned
    # `psnew`, mcplex writes them from the arguments.
    async with Client(URL, mode=mode) as client:
        await client.list_tools()
        for name in ("ps_locate", "psnew_locate"):
            located = await client.call_tool(name, {"region": "eu west ü", "count": 3})
            assert not located.is_error, located
            assert text_of(located) == "3 in eu west ü"


async def _call_reading_no_get_stream(http, tool: str) -> str:
    """A session-era call from a client that opens no GET stream and reads only its call's answer: the
    elicitation it is asked for must come on that answer, and is answered by POST."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {"protocolVersion": "2025-11-25",
            "capabilities": {"elicitation": {}}, "clientInfo": {"name": "raw-http", "version": "1"}}}
    accept = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    response = await http.post(URL, json=init, headers=accept)
    assert response.status_code == 200, response.text
    session = {**accept, "mcp-session-id": response.headers["mcp-session-id"], "mcp-protocol-version": "2025-11-25"}
    initialized = await http.post(URL, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
    assert initialized.status_code == 202
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    async with http.stream("POST", URL, json=call, headers=session) as answer:
        assert answer.status_code == 200
        async for line in answer.aiter_lines():
            if not line.startswith("data: "):
                continue
            message = json.loads(line[len("data: "):])
            if message.get("method") == "elicitation/create":
                reply = {"jsonrpc": "2.0", "id": message["id"], "result": {"action": "accept", "content": {"username": "grace"}}}
                assert (await http.post(URL, json=reply, headers=session)).status_code == 202
            elif message.get("id") == 1:
                return message["result"]["content"][0]["text"]
    raise AssertionError("the call's answer ended without its result")


@pytest.mark.asyncio
async def test_a_json_mode_server_asking_on_its_get_stream_reaches_a_client_that_reads_no_get_stream():
    # The TypeScript SDK server in JSON-response mode sends `ask`'s elicitation on its session's GET stream and
    # holds the call's answer until it is answered; mcplex must carry it on the call's own answer.
    async with httpx2.AsyncClient(timeout=10) as http:
        text = await asyncio.wait_for(_call_reading_no_get_stream(http, "tsjson_ask"), timeout=5)
    assert text == "hello grace (legacy, GET stream)"


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "2026-07-28"])
async def test_a_json_mode_server_asking_on_its_get_stream_reaches_sdk_clients_of_both_eras(mode):
    # A session-era client reads a GET stream; a 2026-07-28 one is asked with input_required, which mcplex
    # must send while the target still holds the call's JSON answer.
    async with Client(URL, mode=mode, elicitation_callback=answer_username) as client:
        text = await asyncio.wait_for(client.call_tool("tsjson_ask", {}), timeout=5)
    assert text_of(text) == "hello grace (legacy, GET stream)"


PINNED = ("pinned", "pinnedold")
HELD_BACK = -32033


async def eventually(what, holds, patience=30.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while not await holds():
        assert loop.time() < deadline, f"not within {patience}s: {what}"
        await asyncio.sleep(0.05)


async def tool_names(client) -> set:
    return {tool.name for tool in (await client.list_tools()).tools}


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_tool_changed_upstream_is_held_back_until_it_reverts(mode):
    heard = []

    async def record(message):
        method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
        if method:
            heard.append(method)

    # Another party changes the server (through a session, whose target hears of its own change); the
    # client under test only lists and calls.
    async with Client(URL, mode="legacy", message_handler=record) as changer, Client(URL, mode=mode) as client:
        simple = {f"{target}_test_simple_text" for target in PINNED}
        assert simple <= await tool_names(client)
        try:
            for target in PINNED:
                await changer.call_tool(f"{target}_set_drift", {"kind": "description"})

            async def held_back():
                return not (simple & await tool_names(client))

            await eventually("the changed tool leaves the lists", held_back)
            await eventually(
                "a session hears the lists changed", lambda: asyncio.sleep(0, "notifications/tools/list_changed" in heard)
            )
            for name in simple:
                with pytest.raises(MCPError) as refused:
                    await client.call_tool(name, {})
                assert refused.value.code == HELD_BACK
                assert f"tool `{name}`" in refused.value.message
                assert "is held back by pinning" in refused.value.message
        finally:
            for target in PINNED:
                await changer.call_tool(f"{target}_set_drift", {"kind": "none"})

        async def restored():
            return simple <= await tool_names(client)

        await eventually("the reverted tool is listed again", restored)
        for name in simple:
            assert text_of(await client.call_tool(name, {})) == "This is a simple text response for testing."


@pytest.mark.asyncio
@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_an_agent_finds_and_calls_tools_it_was_not_given(mode):
    heard = []

    async def record(message):
        method = getattr(message, "method", None) or getattr(getattr(message, "root", None), "method", None)
        if method:
            heard.append(method)

    async with Client(SEARCH_URL, mode=mode, message_handler=record) as client:
        assert await tool_names(client) == {"find_tools", "call_tool", "math_add"}
        found = await client.call_tool("find_tools", {"query": "multiply two numbers"})
        assert not found.is_error
        tools = found.structured_content["tools"]
        assert tools[0]["name"] == "math_multiply" and tools[0]["target"] == "math"
        assert 1 <= len(tools) <= 5
        assert json.loads(text_of(found)) == found.structured_content
        called = await client.call_tool("call_tool", {"name": "math_multiply", "arguments": {"a": 6, "b": 7}})
        assert text_of(called) == "42"
        # Listed or not, a tool is called by its name.
        assert text_of(await client.call_tool("math_subtract", {"a": 50, "b": 8})) == "42"
        if mode == "legacy":
            # A session gets what it found as tools of its own.
            await eventually("the session hears its list changed", lambda: asyncio.sleep(0, "notifications/tools/list_changed" in heard))

            async def listed():
                return "math_multiply" in await tool_names(client)

            await eventually("the found tool is listed", listed)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "url, mode, prefix",
    [
        (SERVE_URL, "legacy", ""),
        (SERVE_URL, "2026-07-28", ""),
        (URL, "legacy", "sestdio_"),
        (URL, "2026-07-28", "sestdio_"),
    ],
    ids=["straight-to-serve", "straight-to-serve-2026", "through-the-sidecar-legacy", "through-the-sidecar-2026"],
)
async def test_a_stdio_server_behind_mcplex_serve_asks_reports_and_answers(url, mode, prefix):
    # server-everything in stdio mode (a process per session, or the warm pool for 2026-07-28 requests):
    # its sampling request, elicitation and progress reach this client, straight or through a sidecar, in
    # both eras.
    async with Client(
        url, mode=mode, sampling_callback=answer_sampling, elicitation_callback=answer_elicitation
    ) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        assert {f"{prefix}echo", f"{prefix}trigger-sampling-request"} <= names, names
        sampled = await client.call_tool(f"{prefix}trigger-sampling-request", {"prompt": "ping", "maxTokens": 10})
        assert "pytest-model" in text_of(sampled), sampled
        assert "hello" in text_of(await client.call_tool(f"{prefix}echo", {"message": "hello"}))
        seen = []
        done = await client.call_tool(
            f"{prefix}trigger-long-running-operation",
            {"duration": 1, "steps": 2},
            progress_callback=lambda p, t, m: record_progress(seen, p, t, m),
        )
        assert "completed" in text_of(done)
        assert len(seen) >= 1, "progress notifications reach the client"
