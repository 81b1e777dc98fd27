// SPDX-License-Identifier: LGPL-2.1-or-later
// Drives `claudemeshctl mcp` with the official MCP SDK client (Client + StdioClientTransport), the
// way Claude Code spawns it. Run by test-mcp-sdk.sh; MCP_SDK_DIR holds node_modules with
// @modelcontextprotocol/sdk, CLAUDEMESHCTL the binary, T the test directory (buses at $T/NAME/bus).
//
//   node mcp-sdk-client.mjs live TOPIC_ID   two clients (alice, bob): tools, channel notifications,
//                                            a peer joining and leaving (the shell starts carol)
//   node mcp-sdk-client.mjs backlog N       bob attaches: exactly N messages pushed (or one summary
//                                            line when N > 10), then read_inbox shows them
//   node mcp-sdk-client.mjs race N          alice sends N while bob's server attaches
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import assert from "node:assert/strict";

const require = createRequire(process.env.MCP_SDK_DIR + "/");
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");

const T = process.env.T;
const WAIT_MS = 20000; // a guard against hanging, never an assertion about speed

class Peer {
  constructor(name) {
    this.name = name;
    this.notes = [];
    this.waiters = [];
  }
  async start(extraArgs = []) {
    this.client = new Client({ name: `test-${this.name}`, version: "1.0.0" });
    this.client.fallbackNotificationHandler = async (n) => {
      if (n.method !== "notifications/claude/channel") return;
      this.notes.push(n.params);
      for (const w of [...this.waiters]) w();
    };
    this.transport = new StdioClientTransport({
      command: process.env.CLAUDEMESHCTL,
      args: ["mcp", ...extraArgs],
      env: { DBUS_SESSION_BUS_ADDRESS: `unix:path=${T}/${this.name}/bus`, PATH: process.env.PATH },
      stderr: "inherit",
    });
    await this.client.connect(this.transport);
    // The backlog is pushed while the server handles notifications/initialized, before it reads
    // the next line: once a ping is answered, every backlog notification has been received.
    await this.client.ping();
  }
  async call(name, args = {}) {
    return this.client.callTool({ name, arguments: args });
  }
  // waits for a notification matching pred, taken from the list
  async expect(pred, what) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      const i = this.notes.findIndex(pred);
      if (i >= 0) return this.notes.splice(i, 1)[0];
      if (Date.now() > deadline)
        throw new Error(`${this.name}: no notification for ${what}; got ${JSON.stringify(this.notes)}`);
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, 200);
        this.waiters.push(() => { clearTimeout(timer); resolve(); });
      });
      this.waiters = [];
    }
  }
  async close() {
    await this.client.close();
  }
}

const text = (result) => result.content.map((c) => c.text).join("\n");

async function until(what, fn) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function live(topicId) {
  const alice = new Peer("alice"), bob = new Peer("bob");
  await alice.start();
  await bob.start();

  // what Claude Code checks: the channel capability, the server's name, a version it speaks
  const caps = alice.client.getServerCapabilities();
  assert.deepEqual(caps.experimental, { "claude/channel": {} });
  assert.deepEqual(caps.tools, {});
  assert.equal(alice.client.getServerVersion().name, "claudemesh");
  assert.match(alice.client.getInstructions(), /send_message/);
  const tools = (await alice.client.listTools()).tools.map((t) => t.name).sort();
  assert.deepEqual(tools, ["list_peers", "read_inbox", "send_message", "set_status"]);

  // a DM by display name
  let r = await alice.call("send_message", { to: "bob", message: "hello bob" });
  assert.ok(!r.isError, text(r));
  const cmid = text(r).match(/client_message_id ([^)]+)\)/)[1];
  let n = await bob.expect((p) => p.content === "alice: hello bob", "the DM");
  assert.equal(n.meta.from_name, "alice");
  assert.equal(n.meta.mesh_slug, "demo");
  assert.equal(n.meta.priority, "next");
  assert.equal(n.meta.client_message_id, cmid);
  assert.match(n.meta.from_pubkey, /^[0-9a-f]{64}$/);
  assert.match(n.meta.from_session_pubkey, /^[0-9a-f]{64}$/);
  assert.equal(n.meta.from_id, n.meta.from_pubkey);
  assert.ok(n.meta.message_id.length > 0);
  for (const v of Object.values(n.meta)) assert.equal(typeof v, "string");
  assert.ok(!("topic" in n.meta) && !("reply_to_id" in n.meta) && !("kind" in n.meta), JSON.stringify(n.meta));
  const firstId = n.meta.message_id;

  // a group, low priority, a reply
  r = await alice.call("send_message", { to: "@backend", message: "to the group", priority: "low", reply_to_id: firstId });
  assert.ok(!r.isError, text(r));
  n = await bob.expect((p) => p.content === "[low] alice: to the group", "the group post");
  assert.equal(n.meta.priority, "low");
  assert.equal(n.meta.reply_to_id, firstId);

  // a topic, priority now
  r = await alice.call("send_message", { to: `#${topicId}`, message: "to the topic", priority: "now" });
  assert.ok(!r.isError, text(r));
  n = await bob.expect((p) => p.content.startsWith("[URGENT] alice (#") && p.content.endsWith("): to the topic"), "the topic post");
  assert.equal(n.meta.priority, "now");
  assert.ok(n.meta.topic && n.content === `[URGENT] alice (#${n.meta.topic}): to the topic`, JSON.stringify(n));

  // a tool error is a result with isError and the daemon's sentence, and the server goes on
  r = await alice.call("send_message", { to: "nobody-here", message: "x" });
  assert.equal(r.isError, true);
  assert.match(text(r), /nobody-here/);
  r = await alice.call("send_message", { to: "bob" });
  assert.equal(r.isError, true);
  assert.match(text(r), /needs "to" and "message"/);

  // list_peers, set_status seen by the other side, read_inbox
  r = await bob.call("list_peers");
  assert.ok(!r.isError, text(r));
  assert.match(text(r), /^- bob \(you\) · /m);
  assert.match(text(r), /^- alice · .* · pubkey [0-9a-f]{64}$/m);
  r = await bob.call("set_status", { status: "working", summary: "testing the MCP server" });
  assert.ok(!r.isError, text(r));
  await until("alice sees bob's summary", async () =>
    /^- bob · working · "testing the MCP server" · groups: backend/m.test(text(await alice.call("list_peers"))));
  r = await bob.call("set_status", { status: "sleepy" });
  assert.equal(r.isError, true);
  r = await bob.call("read_inbox", { limit: 10 });
  assert.ok(!r.isError, text(r));
  // pushed live, so already read: under "Earlier", oldest first
  assert.match(text(r), /^Unread \(0\): none\nEarlier:\n- .* alice: hello bob \[message_id .*\n- .*\[low\] alice: to the group/m);

  // a peer joining and leaving (the shell starts and stops carol)
  writeFileSync(`${T}/join-ready`, "");
  n = await bob.expect((p) => p.meta.kind === "system" && p.meta.event === "peer_joined", "carol joining");
  assert.match(n.content, /^\[system\] Peer "carol" \([0-9a-f]{8}\) joined the mesh$/);
  assert.equal(n.meta.peer_name, "carol");
  assert.equal(n.meta.mesh_slug, "demo");
  writeFileSync(`${T}/leave-ready`, "");
  n = await bob.expect((p) => p.meta.kind === "system" && p.meta.event === "peer_left", "carol leaving");
  assert.match(n.content, /^\[system\] Peer "carol" \([0-9a-f]{8}\) left the mesh$/);

  // nothing else came, and each message once
  assert.deepEqual(bob.notes, []);
  await alice.close();
  await bob.close();
}

async function backlog(count) {
  const bob = new Peer("bob");
  await bob.start();
  if (count > 10) {
    assert.equal(bob.notes.length, 1, JSON.stringify(bob.notes));
    assert.equal(bob.notes[0].content, `[system] ${count} messages arrived while you were away; use read_inbox`);
    assert.equal(bob.notes[0].meta.kind, "system");
    const r = await bob.call("read_inbox", { limit: 100 });
    assert.ok(!r.isError, text(r));
    assert.match(text(r), new RegExp(`^Unread \\(${count}\\):`));
    for (let i = 1; i <= count; i++) assert.match(text(r), new RegExp(`alice: away ${i} \\[`));
  } else {
    const got = bob.notes.map((p) => p.content);
    const want = [];
    for (let i = 1; i <= count; i++) want.push(`alice: away ${i}`);
    assert.deepEqual(got, want);
  }
  await bob.close();
}

// Messages arriving while bob's server attaches: each reaches him exactly once, either pushed
// live or counted in the backlog's summary (and then listed unread by read_inbox); none twice,
// none lost. Which messages take which path varies from run to run; the sum never does.
async function race(count) {
  const alice = new Peer("alice"), bob = new Peer("bob");
  await alice.start();
  const sends = [];
  for (let i = 1; i <= count; i++) sends.push(alice.call("send_message", { to: "bob", message: `race ${i}` }));
  await bob.start();
  for (const r of await Promise.all(sends)) assert.ok(!r.isError, text(r));

  const live = () => bob.notes.filter((p) => /^alice: race \d+$/.test(p.content)).map((p) => p.content);
  const summary = () => {
    const s = bob.notes.find((p) => p.meta.kind === "system" && p.meta.event === "backlog");
    return s ? Number(s.content.match(/^\[system\] (\d+) messages arrived/)[1]) : 0;
  };
  await until("every race message pushed or counted", async () => live().length + summary() >= count);
  const pushed = live();
  assert.equal(new Set(pushed).size, pushed.length, `pushed twice: ${pushed}`);
  const held = summary();
  console.log(`race: pushed ${pushed.length}, counted ${held}`);
  console.log(`race: pushed ${pushed.length}, counted ${held}`);
  assert.equal(pushed.length + held, count, `pushed ${pushed.length}, counted ${held}`);
  const r = await bob.call("read_inbox", { limit: 100 });
  const unread = text(r).split("\nEarlier:")[0].match(/alice: race \d+(?= \[)/g) ?? [];
  assert.equal(unread.length, held, text(r));
  assert.deepEqual([...pushed, ...unread].sort(), Array.from({ length: count }, (_, i) => `alice: race ${i + 1}`).sort());
  await alice.close();
  await bob.close();
}

const [mode, argument] = process.argv.slice(2);
try {
  if (mode === "live") await live(argument);
  else if (mode === "backlog") await backlog(Number(argument));
  else if (mode === "race") await race(Number(argument));
  else throw new Error(`unknown mode ${mode}`);
  console.log(`ok ${mode}`);
  process.exit(0);
} catch (e) {
  console.error(`FAIL ${mode}: ${e.stack || e}`);
  process.exit(1);
}
