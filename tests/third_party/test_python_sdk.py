"""The official Python SDK (PyPI `mcp`) as an agent talking to mcplex, in both protocol eras.

Expects MCPLEX_URL: a sidecar in front of the `everything` example (prefix "") and `math`.
"""

import json
import os

import mcp_types as types
import pytest
from mcp import Client

URL = os.environ["MCPLEX_URL"]


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
