// Drive all 41 tools of moltbook-http-mcp 1.1.1 over stdio with @modelcontextprotocol/sdk.
// Copied next to a node_modules whose moltbook-http-mcp points at the Ledger; argument and
// output as in drive_moltbook_sdk.py. Other agents' sides of a DM are played over plain HTTP.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const args = JSON.parse(process.argv[2]);
const here = dirname(fileURLToPath(import.meta.url));
const cli = join(here, "node_modules", "moltbook-http-mcp", "dist", "cli.js");
const results = {};
const state = {};

async function connect(apiKey) {
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [cli, "--stdio"],
    cwd: here,
    env: { ...process.env, MOLTBOOK_API_KEY: apiKey },
    stderr: "ignore",
  });
  const client = new Client({ name: "crt-ledger-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function call(client, name, params = {}) {
  const answer = await client.callTool({ name, arguments: params });
  const text = answer.content?.[0]?.text ?? "";
  if (answer.isError) throw new Error(text.slice(0, 300));
  return text ? JSON.parse(text) : null;
}

function check(cond, what) {
  if (!cond) throw new Error(`check failed: ${what}`);
}

async function op(name, fn) {
  try {
    await fn();
    results[name] = "ok";
  } catch (err) {
    results[name] = `error: ${String(err?.message ?? err).slice(0, 300)}`;
  }
}

async function http(method, path, key, body) {
  const response = await fetch(args.api + path, {
    method,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${key}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.json();
}

async function register(name) {
  const response = await fetch(args.api + "/agents/register", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  return (await response.json()).agent.api_key;
}

const suffix = String(Date.now() % 1e8);
const me = `mcp_${suffix}`;
const png = join(here, "pixel.png");
writeFileSync(
  png,
  Buffer.from(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==",
    "base64",
  ),
);

const anonymous = await connect("");
await op("moltbook_agent_register", async () => {
  const answer = await call(anonymous, "moltbook_agent_register", { name: me, description: "mcp" });
  state.key = answer.agent.api_key;
  check(answer.agent.id && answer.agent.claim_url, "registration shape");
});
await anonymous.close();
const mcp = await connect(state.key);
const tools = await mcp.listTools();
check(tools.tools.length === 41, `41 tools, got ${tools.tools.length}`);

const submolt = `mcp-${suffix}`;
await op("moltbook_agent_status", async () => check((await call(mcp, "moltbook_agent_status")).status, "status"));
await op("moltbook_agent_me", async () => check((await call(mcp, "moltbook_agent_me")).agent.name === me, "me"));
await op("moltbook_agent_profile", async () =>
  check((await call(mcp, "moltbook_agent_profile", { name: args.peer })).agent.name === args.peer, "profile"));
await op("moltbook_agent_update", async () =>
  check((await call(mcp, "moltbook_agent_update", { description: "updated", metadata: { via: "mcp" } })).agent.description === "updated", "update"));
await op("moltbook_agent_avatar_upload", async () =>
  check((await call(mcp, "moltbook_agent_avatar_upload", { file_path: png })).avatar_url, "avatar"));
await op("moltbook_agent_avatar_remove", async () => call(mcp, "moltbook_agent_avatar_remove"));
await op("moltbook_submolt_create", async () =>
  check((await call(mcp, "moltbook_submolt_create", { name: submolt, display_name: "MCP", description: "d" })).submolt.name === submolt, "create"));
await op("moltbook_submolts_list", async () => check((await call(mcp, "moltbook_submolts_list")).submolts.length >= 3, "list"));
await op("moltbook_submolt_get", async () =>
  check((await call(mcp, "moltbook_submolt_get", { name: submolt })).submolt.your_role === "owner", "owner"));
await op("moltbook_submolt_subscribe", async () => call(mcp, "moltbook_submolt_subscribe", { name: "general" }));
await op("moltbook_submolt_unsubscribe", async () => call(mcp, "moltbook_submolt_unsubscribe", { name: "general" }));
await op("moltbook_submolt_settings", async () =>
  check((await call(mcp, "moltbook_submolt_settings", { name: submolt, description: "new", theme_color: "#112233" })).submolt.theme_color === "#112233", "settings"));
await op("moltbook_submolt_avatar_upload", async () => call(mcp, "moltbook_submolt_avatar_upload", { name: submolt, file_path: png }));
await op("moltbook_submolt_banner_upload", async () =>
  check((await call(mcp, "moltbook_submolt_banner_upload", { name: submolt, file_path: png })).submolt.banner_url, "banner"));
await op("moltbook_submolt_moderator_add", async () =>
  call(mcp, "moltbook_submolt_moderator_add", { name: submolt, agent_name: args.peer }));
await op("moltbook_submolt_moderators_list", async () =>
  check((await call(mcp, "moltbook_submolt_moderators_list", { name: submolt })).moderators.length === 2, "mods"));
await op("moltbook_submolt_moderator_remove", async () =>
  check((await call(mcp, "moltbook_submolt_moderator_remove", { name: submolt, agent_name: args.peer })).changed, "removed"));
await op("moltbook_post_create", async () => {
  const answer = await call(mcp, "moltbook_post_create", { submolt, title: "mcp post", content: "via mcp stdio" });
  state.post = answer.post.id;
});
await op("moltbook_post_get", async () => check((await call(mcp, "moltbook_post_get", { post_id: state.post })).post.id === state.post, "get"));
await op("moltbook_posts_list", async () =>
  check((await call(mcp, "moltbook_posts_list", { submolt, sort: "new", limit: 5 })).posts[0].id === state.post, "list"));
await op("moltbook_feed", async () => call(mcp, "moltbook_feed", { sort: "new", limit: 5 }));
await op("moltbook_post_pin", async () => check((await call(mcp, "moltbook_post_pin", { post_id: state.post })).is_pinned, "pin"));
await op("moltbook_post_unpin", async () => call(mcp, "moltbook_post_unpin", { post_id: state.post }));
await op("moltbook_post_upvote", async () => call(mcp, "moltbook_post_upvote", { post_id: args.peer_post }));
await op("moltbook_post_downvote", async () => call(mcp, "moltbook_post_downvote", { post_id: args.peer_post }));
await op("moltbook_comment_add", async () => {
  const answer = await call(mcp, "moltbook_comment_add", { post_id: args.peer_post, content: "mcp comment" });
  state.comment = answer.comment.id;
  await call(mcp, "moltbook_comment_add", { post_id: args.peer_post, content: "reply", parent_id: state.comment });
});
await op("moltbook_comments_list", async () =>
  check((await call(mcp, "moltbook_comments_list", { post_id: args.peer_post, sort: "new" })).comments.length >= 2, "comments"));
await op("moltbook_comment_upvote", async () => call(mcp, "moltbook_comment_upvote", { comment_id: state.comment }));
await op("moltbook_search", async () =>
  check((await call(mcp, "moltbook_search", { q: "mcp stdio", type: "posts", limit: 5 })).results.length >= 1, "search"));
await op("moltbook_follow", async () => call(mcp, "moltbook_follow", { agent_name: args.peer }));
await op("moltbook_unfollow", async () => call(mcp, "moltbook_unfollow", { agent_name: args.peer }));
await op("moltbook_dm_request", async () =>
  check((await call(mcp, "moltbook_dm_request", { to: args.peer, message: "hello peer" })).conversation_id, "request"));
const friend = await register(`friend_${suffix}`);
const stranger = await register(`stranger_${suffix}`);
const asked = await http("POST", "/agents/dm/request", friend, { to: me, message: "hi from a friend" });
await http("POST", "/agents/dm/request", stranger, { to: me, message: "hi from a stranger" });
await op("moltbook_dm_check", async () => check((await call(mcp, "moltbook_dm_check")).requests.count === 2, "check"));
await op("moltbook_dm_requests", async () => {
  const answer = await call(mcp, "moltbook_dm_requests");
  check(answer.requests.length === 2, "two requests");
  state.reject = answer.requests.find((r) => r.id !== asked.conversation_id).id;
});
await op("moltbook_dm_approve", async () => call(mcp, "moltbook_dm_approve", { conversation_id: asked.conversation_id }));
await op("moltbook_dm_reject", async () =>
  check((await call(mcp, "moltbook_dm_reject", { conversation_id: state.reject, block: true })).status === "blocked", "blocked"));
await op("moltbook_dm_conversations", async () =>
  check((await call(mcp, "moltbook_dm_conversations")).conversations.items.length === 1, "one conversation"));
await op("moltbook_dm_send", async () =>
  call(mcp, "moltbook_dm_send", { conversation_id: asked.conversation_id, message: "welcome", needs_human_input: true }));
await op("moltbook_dm_conversation", async () =>
  check((await call(mcp, "moltbook_dm_conversation", { conversation_id: asked.conversation_id })).messages.length === 2, "messages"));
await op("moltbook_post_delete", async () => call(mcp, "moltbook_post_delete", { post_id: state.post }));
await mcp.close();
console.log(JSON.stringify(results));
