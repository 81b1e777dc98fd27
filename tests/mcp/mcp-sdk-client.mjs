// SPDX-License-Identifier: LGPL-2.1-or-later
// Drives `claudemeshctl mcp` with the official MCP SDK client (Client + StdioClientTransport), the
// way Claude Code spawns it. Run by test-mcp-sdk.sh; MCP_SDK_DIR holds node_modules with
// @modelcontextprotocol/sdk, CLAUDEMESHCTL the binary, T the test directory (buses at $T/NAME/bus).
//
// Each server is a session of its own (--name, --session-id): alice-code on alice's daemon, bob-code
// (in the group backend) on bob's.
//
//   node mcp-sdk-client.mjs live TOPIC_ID   two clients (alice, bob): tools, channel notifications,
//                                            a peer joining and leaving (the shell starts carol)
//   node mcp-sdk-client.mjs pair            two servers on bob's daemon: two peers, a DM to one
//                                            never reaches the other
//   node mcp-sdk-client.mjs restart         bob's server killed: its presence ends; restarted with
//                                            the same session id: the same key, and what was sent
//                                            to it meanwhile pushed once (its key in $T/bob-key)
//   node mcp-sdk-client.mjs backlog N       alice sends N to bob's key while he is away, then bob
//                                            attaches: each pushed or counted once, never again
//   node mcp-sdk-client.mjs race N          alice sends N while bob's server attaches
import { createRequire } from "node:module";
import { readFileSync, writeFileSync } from "node:fs";
import assert from "node:assert/strict";

const require = createRequire(process.env.MCP_SDK_DIR + "/");
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StdioClientTransport } = require("@modelcontextprotocol/sdk/client/stdio.js");

const T = process.env.T;
const WAIT_MS = 20000; // a guard against hanging, never an assertion about speed
const ARGS = {
  alice: ["--name", "alice-code", "--session-id", "alice-s"],
  bob: ["--name", "bob-code", "--session-id", "bob-s", "--group", "backend:member"],
};

class Peer {
  constructor(name) {
    this.name = name;
    this.notes = [];
    this.waiters = [];
  }
  async start(extraArgs = ARGS[this.name] ?? []) {
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
  let r;
  await until("alice sees bob's session", async () => / bob-code /.test(text(await alice.call("list_peers"))));
  r = await alice.call("send_message", { to: "bob-code", message: "hello bob" });
  assert.ok(!r.isError, text(r));
  const cmid = text(r).match(/client_message_id ([^)]+)\)/)[1];
  let n = await bob.expect((p) => p.content === "alice-code: hello bob", "the DM");
  assert.equal(n.meta.from_name, "alice-code");
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
  n = await bob.expect((p) => p.content === "[low] alice-code: to the group", "the group post");
  assert.equal(n.meta.priority, "low");
  assert.equal(n.meta.reply_to_id, firstId);

  // a topic, priority now
  r = await alice.call("send_message", { to: `#${topicId}`, message: "to the topic", priority: "now" });
  assert.ok(!r.isError, text(r));
  n = await bob.expect((p) => p.content.startsWith("[URGENT] alice-code (#") && p.content.endsWith("): to the topic"), "the topic post");
  assert.equal(n.meta.priority, "now");
  assert.ok(n.meta.topic && n.content === `[URGENT] alice-code (#${n.meta.topic}): to the topic`, JSON.stringify(n));

  // a tool error is a result with isError and the daemon's sentence, and the server goes on
  r = await alice.call("send_message", { to: "nobody-here", message: "x" });
  assert.equal(r.isError, true);
  assert.match(text(r), /nobody-here/);
  r = await alice.call("send_message", { to: "bob-code" });
  assert.equal(r.isError, true);
  assert.match(text(r), /needs "to" and "message"/);

  // list_peers, set_status seen by the other side, read_inbox
  r = await bob.call("list_peers");
  assert.ok(!r.isError, text(r));
  assert.match(text(r), /^- bob-code \(you\) · /m);
  assert.match(text(r), /^- alice-code · .* · pubkey [0-9a-f]{64}$/m);
  // the daemon's own presence is the member's, not this session's
  assert.doesNotMatch(text(r), /^- bob · /m);
  r = await bob.call("set_status", { status: "working", summary: "testing the MCP server" });
  assert.ok(!r.isError, text(r));
  await until("alice sees bob's summary", async () =>
    /^- bob-code · working · "testing the MCP server" · groups: backend/m.test(text(await alice.call("list_peers"))));
  r = await bob.call("set_status", { status: "sleepy" });
  assert.equal(r.isError, true);
  r = await bob.call("read_inbox", { limit: 10 });
  assert.ok(!r.isError, text(r));
  // pushed live, so already read: under "Earlier", oldest first
  assert.match(text(r), /^Unread \(0\): none\nEarlier:\n- .* alice-code: hello bob \[message_id .*\n- .*\[low\] alice-code: to the group/m);

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

// two servers on bob's daemon are two sessions of one member: each lists the other as a peer,
// and a DM to one never reaches the other
async function pair() {
  const alice = new Peer("alice"), one = new Peer("bob"), two = new Peer("bob");
  await alice.start();
  await one.start();
  await two.start(["--name", "bob-two", "--session-id", "bob-two"]);
  await until("bob-code lists bob-two", async () => /^- bob-two · /m.test(text(await one.call("list_peers"))));
  await until("bob-two lists bob-code", async () => /^- bob-code · /m.test(text(await two.call("list_peers"))));
  await until("alice lists bob-two", async () => / bob-two /.test(text(await alice.call("list_peers"))));
  let r = await alice.call("send_message", { to: "bob-two", message: "only for two" });
  assert.ok(!r.isError, text(r));
  await two.expect((p) => p.content === "alice-code: only for two", "the DM to bob-two");
  r = await alice.call("send_message", { to: "bob-code", message: "only for one" });
  assert.ok(!r.isError, text(r));
  await one.expect((p) => p.content === "alice-code: only for one", "the DM to bob-code");
  const said = (peer) => peer.notes.filter((p) => p.meta.kind !== "system").map((p) => p.content);
  assert.deepEqual(said(one), []);
  assert.deepEqual(said(two), []);
  await two.close();
  await one.close();
  await alice.close();
}

const bobKey = () => readFileSync(`${T}/bob-key`, "utf8").trim();
const sessionKey = (listing, name) => (listing.match(new RegExp(`^- ${name} · .* · pubkey ([0-9a-f]{64})$`, "m")) ?? [])[1];

// bob's server killed: its presence ends; restarted with the same session id, the same key, and
// the DMs sent to that key meanwhile pushed once
async function restart() {
  const alice = new Peer("alice"), bob = new Peer("bob");
  await alice.start();
  await bob.start();
  let key;
  await until("alice lists bob-code", async () => (key = sessionKey(text(await alice.call("list_peers")), "bob-code")));
  writeFileSync(`${T}/bob-key`, key);

  process.kill(bob.transport.pid, "SIGKILL");
  const n = await alice.expect((p) => p.meta.event === "peer_left" && p.meta.peer_name === "bob-code", "bob-code leaving");
  assert.match(n.content, /^\[system\] Peer "bob-code" \([0-9a-f]{8}\) .*left the mesh$/);
  assert.doesNotMatch(text(await alice.call("list_peers")), / bob-code /);

  for (let i = 1; i <= 3; i++) {
    const r = await alice.call("send_message", { to: key, message: `away ${i}` });
    assert.ok(!r.isError, text(r));
  }
  const bob2 = new Peer("bob");
  await bob2.start();
  await until("bob-code back with the same key", async () =>
    sessionKey(text(await alice.call("list_peers")), "bob-code") === key);
  await until("the three messages", async () => bob2.notes.filter((p) => /^alice-code: away \d$/.test(p.content)).length >= 3);
  assert.deepEqual(bob2.notes.map((p) => p.content).sort(), ["alice-code: away 1", "alice-code: away 2", "alice-code: away 3"]);
  await bob2.close();

  // attached again: nothing is pushed twice, nothing is unread
  const bob3 = new Peer("bob");
  await bob3.start();
  const r = await bob3.call("read_inbox", { limit: 10 });
  assert.match(text(r), /^Unread \(0\): none/, text(r));
  assert.deepEqual(bob3.notes, []);
  await bob3.close();
  await alice.close();
}

// Messages for bob that arrive while his server attaches or before (sent while he was away):
// each reaches him exactly once, either pushed live or counted in the backlog's summary (and then
// listed unread by read_inbox); none twice, none lost. Which messages take which path varies from
// run to run; the sum never does.
async function race(count, before) {
  const alice = new Peer("alice"), bob = new Peer("bob");
  const key = bobKey();
  await alice.start();
  const sends = [];
  for (let i = 1; i <= count; i++) {
    sends.push(alice.call("send_message", { to: key, message: `race ${i}` }));
    if (before) await sends[i - 1];
  }
  await bob.start();
  for (const r of await Promise.all(sends)) assert.ok(!r.isError, text(r));

  const live = () => bob.notes.filter((p) => /^alice-code: race \d+$/.test(p.content)).map((p) => p.content);
  const summary = () => {
    const s = bob.notes.find((p) => p.meta.kind === "system" && p.meta.event === "backlog");
    return s ? Number(s.content.match(/^\[system\] (\d+) messages arrived/)[1]) : 0;
  };
  await until("every message pushed or counted", async () => live().length + summary() >= count);
  const pushed = live();
  assert.equal(new Set(pushed).size, pushed.length, `pushed twice: ${pushed}`);
  const held = summary();
  console.log(`race: pushed ${pushed.length}, counted ${held}`);
  assert.equal(pushed.length + held, count, `pushed ${pushed.length}, counted ${held}`);
  const r = await bob.call("read_inbox", { limit: 100 });
  const unread = text(r).split("\nEarlier:")[0].match(/alice-code: race \d+(?= \[)/g) ?? [];
  assert.equal(unread.length, held, text(r));
  assert.deepEqual([...pushed, ...unread].sort(), Array.from({ length: count }, (_, i) => `alice-code: race ${i + 1}`).sort());
  await bob.close();

  // and never again
  const again = new Peer("bob");
  await again.start();
  assert.deepEqual(again.notes.filter((p) => /race/.test(p.content)), []);
  await again.close();
  await alice.close();
}

const [mode, argument] = process.argv.slice(2);
try {
  if (mode === "live") await live(argument);
  else if (mode === "restart") await restart();
  else if (mode === "pair") await pair();
  else if (mode === "backlog") await race(Number(argument), true);
  else if (mode === "race") await race(Number(argument), false);
  else throw new Error(`unknown mode ${mode}`);
  console.log(`ok ${mode}`);
  process.exit(0);
} catch (e) {
  console.error(`FAIL ${mode}: ${e.stack || e}`);
  process.exit(1);
}
