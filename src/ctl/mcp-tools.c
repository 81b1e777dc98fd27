/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>

#include "bus-json.h"
#include "json-util.h"
#include "mcp.h"
#include "output.h"
#include "time-util.h"

/* Each description costs the model context on every turn: a line each. */
static const char tools_json[] =
        "["
        "{\"name\":\"send_message\","
        "\"description\":\"Send a message on the mesh. to: a peer's name or pubkey, @group, #topic, or * for all.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"to\":{\"type\":\"string\"},"
        "\"message\":{\"type\":\"string\"},"
        "\"priority\":{\"type\":\"string\",\"enum\":[\"now\",\"next\",\"low\"]},"
        "\"reply_to_id\":{\"type\":\"string\",\"description\":\"message_id of the message this answers\"}},"
        "\"required\":[\"to\",\"message\"]}},"
        "{\"name\":\"list_peers\","
        "\"description\":\"List the peers on the mesh with their status, summary and groups.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{}}},"
        "{\"name\":\"read_inbox\","
        "\"description\":\"Show received messages, unread first, and mark them read.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"limit\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":100}}}},"
        "{\"name\":\"set_status\","
        "\"description\":\"Tell peers what you are doing.\","
        "\"inputSchema\":{\"type\":\"object\",\"properties\":{"
        "\"status\":{\"type\":\"string\",\"enum\":[\"idle\",\"working\",\"dnd\"]},"
        "\"summary\":{\"type\":\"string\"}}}}"
        "]";

#define READ_INBOX_DEFAULT 20
#define READ_INBOX_MAX 100

int mcp_tools_list(McpServer *s, json_object **ret) {
        _cleanup_(json_object_putp) json_object *result = json_object_new_object();
        json_object *tools;

        assert(s && ret);
        if (!result)
                return -ENOMEM;
        tools = s->tools ? json_tokener_parse(tools_json) : json_object_new_array();
        if (!tools)
                return -ENOMEM;
        json_object_object_add(result, "tools", tools);
        *ret = TAKE_PTR(result);
        return 0;
}

static int tool_result(const char *text, bool is_error, json_object **ret) {
        _cleanup_(json_object_putp) json_object *result = json_object_new_object(),
                                                *content = json_object_new_array(), *item = json_object_new_object();

        if (!result || !content || !item)
                return -ENOMEM;
        json_object_object_add(item, "type", json_object_new_string("text"));
        json_object_object_add(item, "text", json_object_new_string(text));
        json_object_array_add(content, TAKE_PTR(item));
        json_object_object_add(result, "content", TAKE_PTR(content));
        if (is_error)
                json_object_object_add(result, "isError", json_object_new_boolean(true));
        *ret = TAKE_PTR(result);
        return 0;
}

/* A failed daemon call as the model should read it: the daemon's own sentence. */
static int bus_failure(const sd_bus_error *e, int r, const char *what, json_object **ret) {
        _cleanup_free_ char *text = NULL;

        if (r == -ENOMEM)
                return r;
        if (sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER)) {
                if (asprintf(&text, "Cannot %s: claudemeshd is not running; start it with 'systemctl --user start "
                             "claudemesh' (%s).", what, strna(e->message)) < 0)
                        text = NULL;
        } else if (sd_bus_error_is_set(e) && e->message)
                text = strdup(e->message);
        else if (asprintf(&text, "Cannot %s: %s", what, STRERROR(r)) < 0)
                text = NULL;
        if (!text)
                return -ENOMEM;
        return tool_result(text, true, ret);
}

/* An optional string argument: 1 set, 0 absent, -EINVAL when it is not a string. */
static int string_arg(json_object *args, const char *key, const char **ret) {
        int r = json_member_string_strict(args, key, ret);

        return r == -EILSEQ ? -EINVAL : r;
}

static int call_send_message(McpServer *s, json_object *args, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *id = NULL, *status = NULL, *text = NULL;
        const char *to = NULL, *message = NULL, *priority = NULL, *reply_to = NULL;
        int r;

        if (string_arg(args, "to", &to) <= 0 || !to[0] || string_arg(args, "message", &message) <= 0)
                return tool_result("send_message needs \"to\" and \"message\", both strings.", true, ret);
        if (string_arg(args, "priority", &priority) < 0 || string_arg(args, "reply_to_id", &reply_to) < 0)
                return tool_result("\"priority\" and \"reply_to_id\" must be strings.", true, ret);
        r = mesh_api_send(&s->api, to, message, priority, reply_to && reply_to[0] ? reply_to : NULL, &error, &id,
                          &status);
        if (r < 0)
                return bus_failure(&error, r, "send the message", ret);
        if (asprintf(&text, "%s to %s (client_message_id %s).",
                     streq(status, "done") ? "Already delivered" : "Sent", to, id) < 0)
                return -ENOMEM;
        return tool_result(text, false, ret);
}

static int call_list_peers(McpServer *s, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *peers = NULL;
        _cleanup_free_ char *text = NULL;
        size_t size = 0;
        FILE *f;
        int r;

        r = mesh_api_list_peers(&s->api, &error, &peers);
        if (r < 0)
                return bus_failure(&error, r, "list the peers", ret);
        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        fprintf(f, "Peers on mesh %s:", s->api.slug);
        for (size_t i = 0; i < json_object_array_length(peers); i++) {
                json_object *p = json_object_array_get_idx(peers, i), *groups = NULL;
                _cleanup_free_ char *names = NULL, *since = NULL;
                const char *summary = json_get_string(p, "summary"), *status = json_get_string(p, "status"),
                           *host = json_get_string(p, "hostname");

                /* the daemon's own presence speaks for the member, not for this session */
                if (json_get_bool(p, "self"))
                        continue;
                (void) json_object_object_get_ex(p, "groups", &groups);
                if (mcp_format_groups(groups, &names) < 0 || mcp_format_scalar(p, "connected_at", &since) < 0) {
                        fclose(f);
                        return -ENOMEM;
                }
                fprintf(f, "\n- %s%s · %s", json_get_string(p, "display_name"), mesh_api_is_self(&s->api, json_get_string(p, "pubkey")) ? " (you)" : "",
                        status[0] ? status : "idle");
                if (summary[0])
                        fprintf(f, " · \"%s\"", summary);
                if (names[0])
                        fprintf(f, " · groups: %s", names);
                if (host[0])
                        fprintf(f, " · host %s", host);
                fprintf(f, " · pubkey %s", json_get_string(p, "pubkey"));
        }
        if (json_object_array_length(peers) == 0)
                fputs(" none", f);
        if (fclose(f) != 0)
                return -ENOMEM;
        return tool_result(text, false, ret);
}

static void print_row(FILE *f, json_object *row) {
        _cleanup_free_ char *content = NULL;
        const char *broker_id = json_get_string(row, "broker_message_id");
        char when[ISO8601_MAX] = "";
        json_object *t;

        /* received_at: t (µs) from every daemon so far; a string is taken as it is */
        if (json_object_object_get_ex(row, "received_at", &t) && json_object_is_type(t, json_type_int))
                (void) format_iso8601(json_object_get_uint64(t), when);
        else
                snprintf(when, sizeof when, "%s", json_get_string(row, "received_at"));
        if (mcp_format_content(row, &content) < 0)
                return;
        fprintf(f, "\n- %s %s [message_id %s, from_pubkey %s]", when, content,
                broker_id[0] ? broker_id : json_get_string(row, "id"), json_get_string(row, "sender_pubkey"));
}

/* The newest max rows whose unread flag is want, printed oldest first as a conversation reads.
 * Returns how many. */
static size_t print_rows(FILE *f, json_object *rows, const bool *unread, bool want, size_t max) {
        size_t picked[READ_INBOX_MAX], n_picked = 0;

        for (size_t i = 0; i < json_object_array_length(rows) && n_picked < max && n_picked < READ_INBOX_MAX; i++)
                if (unread[i] == want)
                        picked[n_picked++] = i;
        for (size_t k = n_picked; k > 0; k--)
                print_row(f, json_object_array_get_idx(rows, picked[k - 1]));
        return n_picked;
}

static int call_read_inbox(McpServer *s, json_object *args, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *rows = NULL;
        _cleanup_free_ char *text = NULL;
        _cleanup_free_ bool *unread = NULL;
        size_t n, n_unread = 0, shown = 0, size = 0, limit = READ_INBOX_DEFAULT;
        unsigned count;
        json_object *v;
        FILE *f;
        int r;

        if (json_object_object_get_ex(args, "limit", &v)) {
                if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1 ||
                    json_object_get_int64(v) > READ_INBOX_MAX)
                        return tool_result("\"limit\" must be a whole number from 1 to 100.", true, ret);
                limit = (size_t) json_object_get_int64(v);
        }
        r = mesh_api_unread_count(&s->api, &error, &count);
        if (r < 0)
                return bus_failure(&error, r, "count the unread messages", ret);
        r = mesh_api_list_inbox(&s->api, &error, &rows);
        if (r < 0)
                return bus_failure(&error, r, "read the inbox", ret);
        n = json_object_array_length(rows);
        unread = calloc(n ? n : 1, sizeof(bool));
        if (!unread)
                return -ENOMEM;
        /* Newest first: the daemon's unread ones lead; those the backlog only counted join them. */
        for (size_t i = 0; i < n; i++) {
                unread[i] = i < count || mcp_id_in(s->held, s->n_held, json_get_string(json_object_array_get_idx(rows, i), "id"));
                n_unread += unread[i];
        }

        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        if (n == 0)
                fputs("No messages.", f);
        else {
                fprintf(f, "Unread (%zu):", n_unread);
                shown = print_rows(f, rows, unread, true, limit);
                if (shown == 0)
                        fputs(" none", f);
                if (shown < limit && n_unread < n) {
                        fputs("\nEarlier:", f);
                        (void) print_rows(f, rows, unread, false, limit - shown);
                }
        }
        if (fclose(f) != 0)
                return -ENOMEM;

        r = mesh_api_mark_read(&s->api, &error);
        if (r < 0)
                return bus_failure(&error, r, "mark the messages read", ret);
        mcp_ids_free(&s->held, &s->n_held);
        return tool_result(text, false, ret);
}

static int call_set_status(McpServer *s, json_object *args, json_object **ret) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        const char *status = NULL, *summary = NULL;
        int r;

        if (string_arg(args, "status", &status) < 0 || string_arg(args, "summary", &summary) < 0)
                return tool_result("\"status\" and \"summary\" must be strings.", true, ret);
        if (!status && !summary)
                return tool_result("set_status needs \"status\" (idle, working or dnd), \"summary\", or both.", true, ret);
        r = mesh_api_set_profile(&s->api, status, summary, &error);
        if (r < 0)
                return bus_failure(&error, r, "set the status", ret);
        return tool_result("Peers now see it.", false, ret);
}

int mcp_tools_call(McpServer *s, json_object *params, json_object **ret, char **ret_error) {
        json_object *args = NULL;
        const char *name = NULL;

        assert(s && ret && ret_error);
        if (json_member_string_strict(params, "name", &name) <= 0) {
                *ret_error = strdup("tools/call needs params.name, a string");
                return -EINVAL;
        }
        if (json_object_object_get_ex(params, "arguments", &args) && !json_object_is_type(args, json_type_object) &&
            !json_object_is_type(args, json_type_null)) {
                *ret_error = strdup("params.arguments must be an object");
                return -EINVAL;
        }
        if (s->tools && streq(name, "send_message"))
                return call_send_message(s, args, ret);
        if (s->tools && streq(name, "list_peers"))
                return call_list_peers(s, ret);
        if (s->tools && streq(name, "read_inbox"))
                return call_read_inbox(s, args, ret);
        if (s->tools && streq(name, "set_status"))
                return call_set_status(s, args, ret);
        if (asprintf(ret_error, "Unknown tool: %s", name) < 0)
                *ret_error = NULL;
        return -EINVAL;
}
