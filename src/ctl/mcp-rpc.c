/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <string.h>

#include "bus-json.h"
#include "config-build.h"
#include "ctl.h"
#include "json-util.h"
#include "mcp.h"
#include "output.h"

/* JSON-RPC 2.0 error codes */
#define RPC_PARSE_ERROR (-32700)
#define RPC_INVALID_REQUEST (-32600)
#define RPC_METHOD_NOT_FOUND (-32601)
#define RPC_INVALID_PARAMS (-32602)
#define RPC_INTERNAL_ERROR (-32603)

/* The MCP revisions Claude Code speaks, oldest first; the last is offered to a client asking for
 * one we do not know, as the specification's version negotiation says. */
static const char *const protocol_versions[] = { "2024-11-05", "2025-03-26", "2025-06-18" };
#define READ_CHUNK 65536

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

int mcp_write(McpServer *s, json_object *message) {
        _cleanup_free_ char *line = NULL;
        const char *text;
        int r;

        assert(s && message);
        if (s->failed_output)
                return -EPIPE;
        /* One line: json-c escapes every control character inside strings, newlines included. */
        text = json_object_to_json_string_ext(message, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
        if (!text || asprintf(&line, "%s\n", text) < 0)
                return -ENOMEM;
        r = write_all(STDOUT_FILENO, line, strlen(line));
        if (r < 0) {
                /* The client closed its end: nobody is left to serve. */
                s->failed_output = true;
                (void) sd_event_exit(s->event, r == -EPIPE ? 0 : CTL_EXIT_FAILURE);
        }
        return r;
}

int mcp_notify_channel(McpServer *s, json_object *params) {
        _cleanup_(json_object_putp) json_object *n = json_object_new_object();

        if (!n)
                return -ENOMEM;
        json_object_object_add(n, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(n, "method", json_object_new_string("notifications/claude/channel"));
        json_object_object_add(n, "params", json_object_get(params));
        return mcp_write(s, n);
}

/* id: the request's id, or NULL for JSON-RPC's null (it could not be read). */
static int reply_error(McpServer *s, json_object *id, int code, const char *format, ...) _printf_(4, 5);
static int reply_error(McpServer *s, json_object *id, int code, const char *format, ...) {
        _cleanup_(json_object_putp) json_object *reply = json_object_new_object(), *error = json_object_new_object();
        _cleanup_free_ char *message = NULL;
        va_list ap;
        int r;

        va_start(ap, format);
        r = vasprintf(&message, format, ap);
        va_end(ap);
        if (r < 0 || !reply || !error)
                return -ENOMEM;
        json_object_object_add(error, "code", json_object_new_int(code));
        json_object_object_add(error, "message", json_object_new_string(message));
        json_object_object_add(reply, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(reply, "id", json_object_get(id));
        json_object_object_add(reply, "error", TAKE_PTR(error));
        return mcp_write(s, reply);
}

static int reply_result(McpServer *s, json_object *id, json_object *result) {
        _cleanup_(json_object_putp) json_object *reply = json_object_new_object();

        if (!reply)
                return -ENOMEM;
        json_object_object_add(reply, "jsonrpc", json_object_new_string("2.0"));
        json_object_object_add(reply, "id", json_object_get(id));
        json_object_object_add(reply, "result", json_object_get(result));
        return mcp_write(s, reply);
}

static int initialize_result(McpServer *s, json_object *params, json_object **ret) {
        _cleanup_(json_object_putp) json_object *result = json_object_new_object();
        _cleanup_free_ char *instructions = NULL;
        json_object *capabilities, *experimental, *info;
        const char *asked = json_get_string(params, "protocolVersion"),
                   *version = protocol_versions[ELEMENTSOF(protocol_versions) - 1];

        if (!result)
                return -ENOMEM;
        for (size_t i = 0; i < ELEMENTSOF(protocol_versions); i++)
                if (streq(asked, protocol_versions[i]))
                        version = protocol_versions[i];

        /* Claude Code delivers notifications/claude/channel only from a server that declares
         * experimental["claude/channel"]; tools stays declared with --no-tools, listing none, as
         * upstream's push-pipe does. */
        capabilities = json_object_new_object();
        experimental = json_object_new_object();
        info = json_object_new_object();
        if (!capabilities || !experimental || !info) {
                json_object_put(capabilities);
                json_object_put(experimental);
                json_object_put(info);
                return -ENOMEM;
        }
        json_object_object_add(experimental, "claude/channel", json_object_new_object());
        json_object_object_add(capabilities, "experimental", experimental);
        json_object_object_add(capabilities, "tools", json_object_new_object());
        json_object_object_add(info, "name", json_object_new_string("claudemesh"));
        json_object_object_add(info, "version", json_object_new_string(PACKAGE_VERSION));

        if (asprintf(&instructions,
                     "Messages from peers on the claudemesh mesh \"%s\" arrive as <channel source=\"claudemesh\"> "
                     "notifications: \"[URGENT] name (#topic): text\", with from_name, from_pubkey, message_id, "
                     "topic and reply_to_id in the attributes. Answer promptly: %s",
                     s->api.slug,
                     s->tools ? "send_message with to set to from_name (or from_pubkey) and reply_to_id to "
                                "message_id. list_peers shows who is online, read_inbox what arrived, set_status "
                                "tells peers what you are doing."
                              : "run `claudemeshctl send NAME TEXT` (`--reply-to ID` threads it); "
                                "`claudemeshctl peers` lists who is online.") < 0)
                return -ENOMEM;
        json_object_object_add(result, "protocolVersion", json_object_new_string(version));
        json_object_object_add(result, "capabilities", capabilities);
        json_object_object_add(result, "serverInfo", info);
        json_object_object_add(result, "instructions", json_object_new_string(instructions));
        *ret = TAKE_PTR(result);
        return 0;
}

static int handle_request(McpServer *s, json_object *id, const char *method, json_object *params) {
        _cleanup_(json_object_putp) json_object *result = NULL;
        _cleanup_free_ char *error = NULL;
        int r;

        if (streq(method, "initialize"))
                r = initialize_result(s, params, &result);
        else if (streq(method, "ping"))
                r = (result = json_object_new_object()) ? 0 : -ENOMEM;
        else if (streq(method, "tools/list"))
                r = mcp_tools_list(s, &result);
        else if (streq(method, "tools/call")) {
                r = mcp_tools_call(s, params, &result, &error);
                if (r == -EINVAL)
                        return reply_error(s, id, RPC_INVALID_PARAMS, "%s", strna(error));
        } else {
                _cleanup_free_ char *shown = escape_line(method);
                return reply_error(s, id, RPC_METHOD_NOT_FOUND, "Method not found: %s", strna(shown));
        }
        if (r < 0)
                return reply_error(s, id, RPC_INTERNAL_ERROR, "Internal error: %s", STRERROR(r));
        return reply_result(s, id, result);
}

static void handle_notification(McpServer *s, const char *method) {
        /* Other notifications (cancelled, progress, roots changed) need nothing from a server whose
         * requests all answer at once. */
        if (streq(method, "notifications/initialized") && !s->initialized) {
                s->initialized = true;
                mcp_on_initialized(s);
        }
}

static int handle_line(McpServer *s, const char *line, size_t n) {
        _cleanup_(json_object_putp) json_object *msg = NULL;
        json_object *id = NULL, *method = NULL, *params = NULL, *version = NULL;
        bool has_id;
        int r;

        r = json_parse_strict(line, n, &msg);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return reply_error(s, NULL, RPC_PARSE_ERROR, "Parse error: the line is not one JSON value");
        if (!json_object_is_type(msg, json_type_object))
                return reply_error(s, NULL, RPC_INVALID_REQUEST,
                                   "Invalid Request: expected one JSON-RPC 2.0 object a line (batches are not supported)");

        has_id = json_object_object_get_ex(msg, "id", &id);
        /* Only strings and integers identify a request; anything else cannot be echoed. */
        if (has_id && !json_object_is_type(id, json_type_string) && !json_object_is_type(id, json_type_int))
                return reply_error(s, NULL, RPC_INVALID_REQUEST, "Invalid Request: id must be a string or an integer");
        if (!json_object_object_get_ex(msg, "jsonrpc", &version) || !json_object_is_type(version, json_type_string) ||
            !streq(json_object_get_string(version), "2.0"))
                return reply_error(s, id, RPC_INVALID_REQUEST, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
        if (!json_object_object_get_ex(msg, "method", &method)) {
                /* A response to a request of ours: we send none, so it answers nothing. */
                if (has_id && (json_object_object_get_ex(msg, "result", NULL) ||
                               json_object_object_get_ex(msg, "error", NULL)))
                        return 0;
                return reply_error(s, id, RPC_INVALID_REQUEST, "Invalid Request: no \"method\"");
        }
        if (!json_object_is_type(method, json_type_string))
                return reply_error(s, id, RPC_INVALID_REQUEST, "Invalid Request: \"method\" must be a string");
        if (json_object_object_get_ex(msg, "params", &params) && !json_object_is_type(params, json_type_object) &&
            !json_object_is_type(params, json_type_array))
                return reply_error(s, id, RPC_INVALID_REQUEST, "Invalid Request: \"params\" must be an object");

        if (!has_id) {
                handle_notification(s, json_object_get_string(method));
                return 0;
        }
        return handle_request(s, id, json_object_get_string(method),
                              json_object_is_type(params, json_type_object) ? params : NULL);
}

/* Appends input to the current line, handling each line it completes. */
static int feed(McpServer *s, const char *p, size_t n) {
        int r;

        while (n > 0) {
                const char *nl = memchr(p, '\n', n);
                size_t take = nl ? (size_t) (nl - p) : n;

                if (!s->skipping && s->line_size + take > MCP_LINE_MAX) {
                        /* Said once, at once: the client may be waiting for this request's answer. */
                        s->skipping = true;
                        s->line_size = 0;
                        r = reply_error(s, NULL, RPC_INVALID_REQUEST,
                                        "Invalid Request: a message is longer than %u bytes; it was skipped",
                                        (unsigned) MCP_LINE_MAX);
                        if (r < 0)
                                return r;
                }
                if (!s->skipping) {
                        memcpy(s->line + s->line_size, p, take);
                        s->line_size += take;
                }
                if (!nl)
                        break;
                if (!s->skipping) {
                        size_t len = s->line_size;

                        if (len > 0 && s->line[len - 1] == '\r')
                                len--;
                        s->line[len] = '\0';
                        if (len > 0 && strspn(s->line, " \t") < len) {
                                r = handle_line(s, s->line, len);
                                if (r == -ENOMEM)
                                        return r;
                        }
                }
                s->skipping = false;
                s->line_size = 0;
                p = nl + 1;
                n -= take + 1;
        }
        return 1;
}

int mcp_read_input(McpServer *s, int fd) {
        char buf[READ_CHUNK];
        ssize_t n;

        assert(s);
        if (!s->line) {
                s->line = malloc(MCP_LINE_MAX + 1);
                if (!s->line)
                        return -ENOMEM;
        }
        /* One read a wakeup, so stdin needs no O_NONBLOCK (which would change the client's pipe). */
        n = read(fd, buf, sizeof buf);
        if (n < 0)
                return errno == EINTR || errno == EAGAIN ? 1 : -errno;
        if (n == 0) {
                /* A line cut off by the end of input was never a message. */
                if (s->line_size > 0 && !s->skipping)
                        fprintf(stderr, "claudemeshctl mcp: input ended inside a message; ignoring it\n");
                return 0;
        }
        return feed(s, buf, (size_t) n);
}
