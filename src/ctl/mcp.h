/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * claudemeshctl mcp: a Model Context Protocol server on stdin/stdout (JSON-RPC 2.0, one message a
 * line) that Claude Code starts. It pushes what arrives on one mesh as
 * notifications/claude/channel and offers a few tools.
 *
 *   mcp.c         the verb: the mesh, the event loop, daemon signals, the backlog
 *   mcp-rpc.c     stdin lines, JSON-RPC framing and the protocol's own methods
 *   mcp-tools.c   the tools
 *   mcp-format.c  channel notifications in upstream's shapes
 *   mcp-api.c     the mesh API the rest is built on
 */

#include <json-c/json.h>
#include <stdbool.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "macro.h"

/*
 * The identity the server speaks for: a session of its own on the mesh (RegisterSession), an
 * org.claudemesh.Session1 object with a key the daemon holds. It sends, reads its inbox and sets
 * its status through that object, and lives as long as this process. The peer list is the
 * mesh's (Daemon1). Every function returns a negative errno; on a failure the daemon explains,
 * error holds its sentence.
 */
typedef struct MeshApi {
        sd_bus *bus;
        char *slug;
        char *id;
        const char *name;         /* --name: the session's display name; NULL: the config's */
        const char *session_id;   /* --session-id: the same id gets the same key back; NULL: a new one */
        char **groups;            /* --group: "name" or "name:role"; NULL: none */
        char *session;            /* the Session1 object path, once registered */
        char *public_key;         /* the session's key, 64 hex */
} MeshApi;

void mesh_api_done(MeshApi *a);
/* Which mesh: --mesh (slug or id), else the only one, else config.json's defaultMesh. Prints
 * what is wrong and returns an exit code (0: *a is set). */
int mesh_api_resolve(sd_bus *bus, const char *name, MeshApi *a);
/* Whether a signal's mesh argument (a slug) names our mesh. */
bool mesh_api_is_ours(const MeshApi *a, const char *mesh);
/* RegisterSession for this process on the mesh (D-Bus activation starts the daemon), with --name,
 * --session-id and the working directory; again after the daemon restarted. */
int mesh_api_register(MeshApi *a, sd_bus_error *error);
/* Whether a key is our session's. */
bool mesh_api_is_self(const MeshApi *a, const char *pubkey);
/* Whether a signal comes from our session's object. */
bool mesh_api_is_session(const MeshApi *a, sd_bus_message *m);
int mesh_api_send(MeshApi *a, const char *to, const char *message, const char *priority, const char *reply_to,
                  sd_bus_error *error, char **ret_id, char **ret_status);
/* aa{sv} answers as JSON arrays of objects; inbox rows newest first (the daemon's default limit). */
int mesh_api_list_peers(MeshApi *a, sd_bus_error *error, json_object **ret);
int mesh_api_list_inbox(MeshApi *a, sd_bus_error *error, json_object **ret);
int mesh_api_unread_count(MeshApi *a, sd_bus_error *error, unsigned *ret);
int mesh_api_mark_read(MeshApi *a, sd_bus_error *error);
int mesh_api_set_profile(MeshApi *a, const char *status, const char *summary, sd_bus_error *error);
/* PeerJoined and PeerLeft of the daemon (every mesh: filter with _is_ours), into *ret_daemon, and
 * Session1.MessageReceived (every session: filter with _is_session), into *ret_session. */
int mesh_api_match_events(MeshApi *a, sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_daemon,
                          sd_bus_slot **ret_session);

/* Channel notifications, params {content, meta} with every meta value a string (Claude Code
 * drops a notification whose meta holds anything else). */
int mcp_format_message(json_object *row, const char *slug, json_object **ret_params);
int mcp_format_peer(json_object *peer, const char *slug, bool joined, json_object **ret_params);
int mcp_format_system(const char *content, const char *event, const char *slug, json_object **ret_params);
/* A message as one line for read_inbox: "[URGENT] alice (#topic): body". */
int mcp_format_content(json_object *row, char **ret);
/* The group names of a peer's groups value, whatever its D-Bus type was (JSON text, as, …):
 * "a, b", or "" without groups. */
int mcp_format_groups(json_object *groups, char **ret);
/* A dict value that was s or t/x/u on the bus, as text ("" when absent). */
int mcp_format_scalar(json_object *o, const char *key, char **ret);

#define MCP_LINE_MAX (1024 * 1024)
#define MCP_BACKLOG_SUMMARY_MIN 10u

typedef struct McpServer {
        sd_event *event;
        MeshApi api;
        bool tools;
        bool initialized;
        bool daemon_present;
        bool failed_output;

        /* stdin: the line being read; past MCP_LINE_MAX the rest of it is skipped */
        char *line;
        size_t line_size;
        bool skipping;

        /* Inbox rows the backlog pushed (their signals may still come) and those it only counted
         * in a summary line (read_inbox shows them as unread). Bounded by the daemon's list limit
         * per backlog run; trimmed below. */
        char **pushed;
        size_t n_pushed;
        char **held;
        size_t n_held;
} McpServer;

/* Writes one JSON-RPC message as a line on stdout. */
int mcp_write(McpServer *s, json_object *message);
int mcp_notify_channel(McpServer *s, json_object *params);
/* Reads what stdin has; handles every complete line. 0 at end of input. */
int mcp_read_input(McpServer *s, int fd);
/* Runs the backlog once the client is ready (notifications/initialized). */
void mcp_on_initialized(McpServer *s);

/* tools/list and tools/call: the result object. A failing tool is a result with isError; a
 * negative errno means the request itself is bad (-EINVAL: unknown tool) or memory ran out. */
int mcp_tools_list(McpServer *s, json_object **ret);
int mcp_tools_call(McpServer *s, json_object *params, json_object **ret, char **ret_error);

bool mcp_id_in(char *const *ids, size_t n, const char *id);
int mcp_id_add(char ***ids, size_t *n, const char *id);
void mcp_ids_free(char ***ids, size_t *n);
