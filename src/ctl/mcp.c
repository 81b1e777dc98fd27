/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bus-json.h"
#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "mcp.h"
#include "output.h"

/* Ids remembered from backlogs: a few runs of the daemon's list limit. */
#define IDS_MAX 1000

static bool streq_ptr(const char *a, const char *b) {
        return a && b && streq(a, b);
}

bool mcp_id_in(char *const *ids, size_t n, const char *id) {
        for (size_t i = 0; i < n; i++)
                if (streq(ids[i], id))
                        return true;
        return false;
}

int mcp_id_add(char ***ids, size_t *n, const char *id) {
        char **grown, *copy;

        assert(ids && n && id);
        if (mcp_id_in(*ids, *n, id))
                return 0;
        if (*n >= IDS_MAX) {
                /* the oldest go: their signals came long ago */
                free((*ids)[0]);
                memmove(*ids, *ids + 1, (*n - 1) * sizeof(char *));
                (*n)--;
        }
        copy = strdup(id);
        if (!copy)
                return -ENOMEM;
        grown = reallocarray(*ids, *n + 1, sizeof(char *));
        if (!grown) {
                free(copy);
                return -ENOMEM;
        }
        grown[(*n)++] = copy;
        *ids = grown;
        return 0;
}

void mcp_ids_free(char ***ids, size_t *n) {
        for (size_t i = 0; i < *n; i++)
                free((*ids)[i]);
        *ids = mfree(*ids);
        *n = 0;
}

static void warn(const char *format, ...) _printf_(1, 2);
static void warn(const char *format, ...) {
        va_list ap;

        /* stderr is Claude Code's MCP log, never the protocol stream */
        fputs("claudemeshctl mcp: ", stderr);
        va_start(ap, format);
        vfprintf(stderr, format, ap);
        va_end(ap);
        fputc('\n', stderr);
}

static void push(McpServer *s, json_object *params) {
        int r = mcp_notify_channel(s, params);

        if (r < 0 && r != -EPIPE)
                warn("cannot write a notification: %s", STRERROR(r));
}

static void push_system(McpServer *s, const char *content, const char *event) {
        _cleanup_(json_object_putp) json_object *params = NULL;

        if (mcp_format_system(content, event, s->api.slug, &params) < 0) {
                warn("out of memory");
                return;
        }
        push(s, params);
}

static int push_message(McpServer *s, json_object *row) {
        _cleanup_(json_object_putp) json_object *params = NULL;
        int r;

        r = mcp_format_message(row, s->api.slug, &params);
        if (r < 0)
                return r;
        push(s, params);
        return 0;
}

/* Marks the mesh read after a push: what the client was shown is not shown again by the next
 * server's backlog. Everything stored before now was pushed or is signalled after this. */
static void mark_read(McpServer *s) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        r = mesh_api_mark_read(&s->api, &error);
        if (r < 0)
                warn("cannot mark the messages read, a later start may show them again: %s",
                     error.message ? error.message : STRERROR(r));
}

/* UnreadCount, the list and UnreadCount again: when both counts agree, nothing arrived or was
 * read between them, so the newest `count` rows are exactly the unread ones. */
static int fetch_unread(McpServer *s, json_object **ret_rows, unsigned *ret_count, sd_bus_error *error) {
        for (unsigned attempt = 0;; attempt++) {
                _cleanup_(json_object_putp) json_object *rows = NULL;
                unsigned before, after;
                int r;

                r = mesh_api_unread_count(&s->api, error, &before);
                if (r < 0)
                        return r;
                r = mesh_api_list_inbox(&s->api, error, &rows);
                if (r < 0)
                        return r;
                r = mesh_api_unread_count(&s->api, error, &after);
                if (r < 0)
                        return r;
                /* a mesh busy enough never to agree: the later count, at worst one extra row */
                if (before == after || attempt >= 4) {
                        *ret_rows = TAKE_PTR(rows);
                        *ret_count = after;
                        return 0;
                }
        }
}

/* Pushes what arrived while no server was attached, once: each message, or one line saying how
 * many when there are more than MCP_BACKLOG_SUMMARY_MIN. Then marks them read. */
static void run_backlog(McpServer *s) {
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_(json_object_putp) json_object *rows = NULL;
        _cleanup_free_ char *line = NULL;
        size_t n, n_new = 0;
        unsigned count;
        int r;

        r = fetch_unread(s, &rows, &count, &error);
        if (r < 0) {
                warn("cannot read the inbox for what arrived before: %s", error.message ? error.message : STRERROR(r));
                return;
        }
        n = json_object_array_length(rows);
        if (n > count)
                n = count;
        for (size_t i = 0; i < n; i++)
                n_new += !mcp_id_in(s->pushed, s->n_pushed, json_get_string(json_object_array_get_idx(rows, i), "id"));
        /* more unread than the list holds: the count says how many */
        if (count > n)
                n_new += count - n;
        if (n_new == 0)
                return;

        if (n_new > MCP_BACKLOG_SUMMARY_MIN) {
                if (asprintf(&line, "[system] %zu messages arrived while you were away; %s", n_new,
                             s->tools ? "use read_inbox" : "run `claudemeshctl inbox`") < 0) {
                        warn("out of memory");
                        return;
                }
                push_system(s, line, "backlog");
        }
        /* oldest first */
        for (size_t i = n; i > 0; i--) {
                json_object *row = json_object_array_get_idx(rows, i - 1);
                const char *id = json_get_string(row, "id");

                if (mcp_id_in(s->pushed, s->n_pushed, id))
                        continue;
                if (n_new > MCP_BACKLOG_SUMMARY_MIN)
                        r = mcp_id_add(&s->held, &s->n_held, id);
                else
                        r = push_message(s, row);
                if (r < 0)
                        break;
                r = mcp_id_add(&s->pushed, &s->n_pushed, id);
                if (r < 0)
                        break;
        }
        if (r < 0) {
                /* what was not pushed stays unread, for the next server */
                warn("cannot push what arrived before: %s", STRERROR(r));
                return;
        }
        mark_read(s);
}

void mcp_on_initialized(McpServer *s) {
        assert(s);
        if (s->daemon_present)
                run_backlog(s);
}

/* Session1.MessageReceived of our session: what is addressed to it (its key, its groups, broadcasts,
 * topics). Daemon1's PeerJoined and PeerLeft of our mesh. The member's own MessageReceived is not
 * this session's. */
static int on_daemon_signal(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        McpServer *s = userdata;
        _cleanup_(json_object_putp) json_object *dict = NULL, *params = NULL;
        const char *member = sd_bus_message_get_member(m), *mesh = NULL;
        bool message = streq_ptr(member, "MessageReceived") &&
                       streq_ptr(sd_bus_message_get_interface(m), "org.claudemesh.Session1"),
             joined = streq_ptr(member, "PeerJoined");
        int r;

        if (!message && !joined && !streq_ptr(member, "PeerLeft"))
                return 0;
        /* Before the client is ready nothing may be sent; the backlog then fetches what came. */
        if (!s->initialized)
                return 0;
        if (message && !mesh_api_is_session(&s->api, m))
                return 0;
        if (!message) {
                r = sd_bus_message_read(m, "s", &mesh);
                if (r < 0) {
                        warn("ignoring a malformed %s signal", member);
                        return 0;
                }
        }
        r = bus_message_read_json(m, &dict);
        if (r <= 0 || !json_object_is_type(dict, json_type_object)) {
                warn("ignoring a malformed %s signal", member);
                return 0;
        }
        if (!message && !mesh_api_is_ours(&s->api, mesh))
                return 0;

        if (message) {
                const char *id = json_get_string(dict, "id");

                if (mcp_id_in(s->pushed, s->n_pushed, id))
                        return 0;
                r = mcp_format_message(dict, s->api.slug, &params);
        } else {
                /* the daemon's own presence, and this session's */
                if (json_get_bool(dict, "self") || mesh_api_is_self(&s->api, json_get_string(dict, "pubkey")))
                        return 0;
                r = mcp_format_peer(dict, s->api.slug, joined, &params);
        }
        if (r < 0) {
                warn("cannot forward a %s signal: %s", member, STRERROR(r));
                return 0;
        }
        push(s, params);
        if (message)
                mark_read(s);
        return 0;
}

/* The daemon left or came back. A systemd restart or D-Bus activation brings it back, and what
 * it stored meanwhile arrives through the backlog, so the server stays. */
static int on_owner_changed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error) {
        McpServer *s = userdata;
        const char *name, *old_owner, *new_owner;

        if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0 || !streq(name, DAEMON_SERVICE))
                return 0;
        if (!new_owner[0] && s->daemon_present) {
                s->daemon_present = false;
                warn("claudemeshd left the session bus; waiting for it to come back");
                if (s->initialized)
                        push_system(s, "[system] claudemeshd stopped; mesh messages resume when it is back",
                                    "daemon_stopped");
        } else if (new_owner[0] && !s->daemon_present) {
                _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
                int r;

                s->daemon_present = true;
                warn("claudemeshd is back");
                /* our session ended with the daemon: the same --session-id gets the same key back */
                r = mesh_api_register(&s->api, &error);
                if (r < 0) {
                        warn("cannot register the session again: %s", error.message ? error.message : STRERROR(r));
                        return 0;
                }
                if (s->initialized) {
                        push_system(s, "[system] claudemeshd is back", "daemon_started");
                        run_backlog(s);
                }
        }
        return 0;
}

static int on_stdin(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        McpServer *s = userdata;
        int r;

        r = mcp_read_input(s, fd);
        if (r == 0)
                /* the client closed our input: it is done with us */
                return sd_event_exit(s->event, CTL_EXIT_OK);
        if (r < 0) {
                warn("cannot read standard input: %s", STRERROR(r));
                return sd_event_exit(s->event, CTL_EXIT_FAILURE);
        }
        return 0;
}

static int on_signal(sd_event_source *source, const struct signalfd_siginfo *si, void *userdata) {
        return sd_event_exit(sd_event_source_get_event(source), CTL_EXIT_OK);
}

static void server_done(McpServer *s) {
        mcp_ids_free(&s->pushed, &s->n_pushed);
        mcp_ids_free(&s->held, &s->n_held);
        s->line = mfree(s->line);
        mesh_api_done(&s->api);
        s->event = sd_event_unref(s->event);
}

static int run(McpServer *s, sd_bus *bus) {
        _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *events = NULL, *session_events = NULL, *owner = NULL;
        _cleanup_(sd_event_source_unrefp) sd_event_source *input = NULL;
        sigset_t mask;
        int r;

        /* A client gone from our stdout is EPIPE on write, not death by signal. */
        if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
                return ctl_error_errno(negative_errno(), "Cannot ignore SIGPIPE: %m");
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return ctl_error_errno(negative_errno(), "Cannot block signals: %m");

        r = sd_event_default(&s->event);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");
        r = sd_event_add_signal(s->event, NULL, SIGINT, on_signal, NULL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot watch SIGINT: %m");
        r = sd_event_add_signal(s->event, NULL, SIGTERM, on_signal, NULL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot watch SIGTERM: %m");
        r = sd_event_add_io(s->event, &input, STDIN_FILENO, EPOLLIN, on_stdin, s);
        if (r == -EPERM)
                return ctl_usage_error("Standard input is a regular file; claudemeshctl mcp reads a pipe or a "
                                       "socket from its MCP client (Claude Code).");
        if (r < 0)
                return ctl_error_errno(r, "Cannot watch standard input: %m");

        /* Subscribed before anything is read, so nothing falls between the backlog and the signals. */
        r = mesh_api_match_events(&s->api, on_daemon_signal, s, &events, &session_events);
        if (r < 0)
                return ctl_error_errno(r, "Cannot subscribe to the daemon's signals: %m");
        r = sd_bus_add_match(bus, &owner,
                             "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
                             "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" DAEMON_SERVICE "'",
                             on_owner_changed, s);
        if (r < 0)
                return ctl_error_errno(r, "Cannot watch the daemon: %m");
        r = sd_bus_attach_event(bus, s->event, SD_EVENT_PRIORITY_NORMAL);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");
        r = sd_bus_set_exit_on_disconnect(bus, true);
        if (r < 0)
                return ctl_error_errno(r, "Cannot set up the event loop: %m");

        r = sd_event_loop(s->event);
        (void) sd_bus_detach_event(bus);
        if (r < 0)
                return ctl_error_errno(r, "Event loop failed: %m");
        if (r == EXIT_FAILURE && !s->failed_output && sd_bus_is_open(bus) <= 0) {
                ctl_error("The session bus went away; the MCP server stops.");
                return CTL_EXIT_NOT_RUNNING;
        }
        return r;
}

int verb_mcp(sd_bus *bus, int argc, char **argv) {
        _cleanup_(server_done) McpServer s = {
                .tools = !arg.no_tools,
                .daemon_present = true,
        };
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        int r;

        /* Resolving the mesh asks the daemon, and so starts it by D-Bus activation. */
        r = mesh_api_resolve(bus, arg.mesh, &s.api);
        if (r != CTL_EXIT_OK)
                return r;
        /* Upstream's launcher hands its Claude Code session these; honour them so a wrapper
         * written for it keeps one identity per Claude Code session here too. */
        s.api.name = arg.name ?: empty_to_null(getenv("CLAUDEMESH_DISPLAY_NAME"));
        s.api.session_id = arg.session_id ?: empty_to_null(getenv("CLAUDEMESH_SESSION_ID"));
        s.api.groups = arg.groups;
        r = mesh_api_register(&s.api, &error);
        if (r < 0)
                return bus_report_error(&error, r, "register a session for the MCP server");
        return run(&s, bus);
}
