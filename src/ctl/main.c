/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <getopt.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

#include "bus-util.h"
#include "config-build.h"
#include "ctl.h"
#include "output.h"

Args arg = {
        .ask_password = true,
        .visible = -1,
};

/* Options after --json, --no-ask-password and --full apply to some commands only; each has a bit. */
enum {
        ARG_VERSION = 0x100,
        ARG_JSON,
        ARG_NO_ASK_PASSWORD,
        ARG_FULL,
        ARG_MESH,
        ARG_PRIORITY,
        ARG_META,
        ARG_REPLY_TO,
        ARG_ID,
        ARG_SINCE,
        ARG_FROM,
        ARG_TOPIC,
        ARG_LIMIT,
        ARG_FOLLOW,
        ARG_STATUS,
        ARG_NEW_ID,
        ARG_SUMMARY,
        ARG_VISIBLE,
        ARG_TITLE,
        ARG_BIO,
        ARG_AVATAR,
        ARG_CAPABILITY,
        ARG_NO_TOOLS,
        ARG_PRINT,
        ARG_NAME,
        ARG_SESSION_ID,
        ARG_GROUP,
};
#define OPT(x) (1u << (ARG_##x - ARG_MESH))

static const struct option options[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, ARG_VERSION },
        { "json", no_argument, NULL, ARG_JSON },
        { "no-ask-password", no_argument, NULL, ARG_NO_ASK_PASSWORD },
        { "full", no_argument, NULL, ARG_FULL },
        { "mesh", required_argument, NULL, ARG_MESH },
        { "priority", required_argument, NULL, ARG_PRIORITY },
        { "meta", required_argument, NULL, ARG_META },
        { "reply-to", required_argument, NULL, ARG_REPLY_TO },
        { "id", required_argument, NULL, ARG_ID },
        { "since", required_argument, NULL, ARG_SINCE },
        { "from", required_argument, NULL, ARG_FROM },
        { "topic", required_argument, NULL, ARG_TOPIC },
        { "limit", required_argument, NULL, ARG_LIMIT },
        { "follow", no_argument, NULL, ARG_FOLLOW },
        { "status", required_argument, NULL, ARG_STATUS },
        { "new-id", required_argument, NULL, ARG_NEW_ID },
        { "summary", required_argument, NULL, ARG_SUMMARY },
        { "visible", required_argument, NULL, ARG_VISIBLE },
        { "title", required_argument, NULL, ARG_TITLE },
        { "bio", required_argument, NULL, ARG_BIO },
        { "avatar", required_argument, NULL, ARG_AVATAR },
        { "capability", required_argument, NULL, ARG_CAPABILITY },
        { "no-tools", no_argument, NULL, ARG_NO_TOOLS },
        { "print", no_argument, NULL, ARG_PRINT },
        { "name", required_argument, NULL, ARG_NAME },
        { "session-id", required_argument, NULL, ARG_SESSION_ID },
        { "group", required_argument, NULL, ARG_GROUP },
        { NULL, 0, NULL, 0 },
};

typedef struct Verb {
        const char *name;
        int min_args, max_args;
        unsigned options;
        int (*run)(sd_bus *bus, int argc, char **argv);
} Verb;

static const Verb verbs[] = {
        { "status", 0, 0, 0, verb_status },
        { "meshes", 0, 0, 0, verb_meshes },
        { "send", 2, 2, OPT(MESH) | OPT(PRIORITY) | OPT(META) | OPT(REPLY_TO) | OPT(ID), verb_send },
        { "inbox", 0, 0, OPT(MESH) | OPT(SINCE) | OPT(FROM) | OPT(TOPIC) | OPT(LIMIT) | OPT(FOLLOW), verb_inbox },
        { "outbox", 0, 0, OPT(MESH) | OPT(STATUS) | OPT(LIMIT), verb_outbox },
        { "requeue", 1, 1, OPT(NEW_ID), verb_requeue },
        { "peers", 0, 0, OPT(MESH), verb_peers },
        { "profile", 0, 0, OPT(MESH) | OPT(SUMMARY) | OPT(STATUS) | OPT(VISIBLE) | OPT(TITLE) | OPT(BIO) |
                           OPT(AVATAR) | OPT(CAPABILITY), verb_profile },
        { "accept-host", 0, 0, 0, verb_accept_host },
        { "reconnect", 0, 0, OPT(MESH), verb_reconnect },
        { "mark-read", 0, 0, OPT(MESH), verb_mark_read },
        { "watch", 0, 0, OPT(MESH), verb_watch },
        { "mcp", 0, 0, OPT(MESH) | OPT(NO_TOOLS) | OPT(NAME) | OPT(SESSION_ID) | OPT(GROUP),
          verb_mcp },
        { "setup", 1, 1, OPT(MESH) | OPT(NO_TOOLS) | OPT(PRINT), verb_setup },
};

static void help(void) {
        printf("%sclaudemeshctl%s [OPTIONS...] COMMAND ...\n\n"
               "Query and control claudemeshd, the claudemesh daemon on the session bus.\n\n"
               "%sCommands:%s\n"
               "  status                   Show the daemon, the host fingerprint and every mesh\n"
               "  meshes                   List the configured meshes\n"
               "  send TO MESSAGE|-        Send a message (\"-\": read it from standard input)\n"
               "  inbox                    List received messages\n"
               "  outbox                   List sent and queued messages\n"
               "  requeue ROW|ID           Send an outbox row again under a new id\n"
               "  peers                    List the peers of a mesh\n"
               "  profile                  Change the profile peers see (no options: show it)\n"
               "  accept-host              Accept this host's fingerprint (after a clone or move)\n"
               "  reconnect                Reconnect a mesh to its broker\n"
               "  mark-read                Mark a mesh's messages as read\n"
               "  watch                    Print events and changes as they happen\n"
               "  mcp                      Serve the mesh to Claude Code (MCP on stdin/stdout)\n"
               "  setup claude-code        Add that MCP server to ~/.claude.json\n\n"
               "%sOptions:%s\n"
               "  -h --help                Show this help\n"
               "     --version             Show the version\n"
               "     --json                Print JSON (one object per line for watch, inbox --follow)\n"
               "     --no-ask-password     Do not ask for a password when polkit wants one\n"
               "  -l --full                Do not cut or abbreviate to fit the terminal\n"
               "  -m --mesh=MESH           The mesh (slug or id); needed with several meshes\n"
               "  -p --priority=PRIORITY   send: now, next (default) or low\n"
               "     --meta=JSON           send: a JSON object sent along\n"
               "     --reply-to=ID         send: the message this one answers\n"
               "     --id=ID               send: the client message id (repeat-safe)\n"
               "     --since=TIME          inbox: received at or after TIME (ISO 8601 or µs)\n"
               "     --from=PUBKEY         inbox: from this sender\n"
               "     --topic=TOPIC         inbox: in this topic\n"
               "  -n --limit=N             inbox, outbox: at most N rows, 1 to 100000\n"
               "  -f --follow              inbox: keep printing messages as they arrive\n"
               "     --status=STATUS       outbox: pending, inflight, done, dead or aborted;\n"
               "                           profile: idle, working or dnd\n"
               "     --new-id=ID           requeue: the new client message id\n"
               "     --summary=TEXT        profile: what you are doing\n"
               "     --visible=yes|no      profile: whether peers see you\n"
               "     --title=, --bio=, --avatar=TEXT\n"
               "                           profile: the other profile fields\n"
               "     --capability=NAME     profile: a capability (repeat for several)\n"
               "     --no-tools            mcp, setup: push messages only, offer no tools\n"
               "     --name=NAME           mcp: the session's display name on the mesh\n"
               "     --session-id=ID       mcp: keep the session's identity under ID\n"
               "     --group=NAME[:ROLE]   mcp: a group of the session (repeat for several)\n"
               "     --print               setup: print the entry instead of writing it\n\n"
               "See the claudemeshctl(1) man page for details and exit codes.\n",
               ansi_bold(), ansi_normal(), ansi_bold(), ansi_normal(), ansi_bold(), ansi_normal());
}

static int parse_boolean(const char *s) {
        static const char *const yes[] = { "yes", "y", "true", "on", "1" }, *const no[] = { "no", "n", "false", "off", "0" };

        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (streq(s, yes[i]))
                        return 1;
                if (streq(s, no[i]))
                        return 0;
        }
        return -EINVAL;
}

/* Appends an argv pointer to a NULL-terminated list (--capability, --group). */
static int add_string(char ***list, size_t *n, const char *c) {
        char **l = reallocarray(*list, *n + 2, sizeof(char *));

        if (!l)
                return -ENOMEM;
        l[(*n)++] = (char *) c;
        l[*n] = NULL;
        *list = l;
        return 0;
}

static bool limit_is_valid(const char *s) {
        unsigned long v;
        char *end;

        if (!s[0] || s[0] < '0' || s[0] > '9')
                return false;
        errno = 0;
        v = strtoul(s, &end, 10);
        return errno == 0 && !*end && v >= 1 && v <= 100000;
}

/* Returns -1 to go on, else an exit code. *ret_given collects the bits of the options seen. */
static int parse_argv(int argc, char *argv[], unsigned *ret_given) {
        const char **string_args[] = {
                [ARG_MESH - ARG_MESH] = &arg.mesh,         [ARG_PRIORITY - ARG_MESH] = &arg.priority,
                [ARG_META - ARG_MESH] = &arg.meta,         [ARG_REPLY_TO - ARG_MESH] = &arg.reply_to,
                [ARG_ID - ARG_MESH] = &arg.id,             [ARG_SINCE - ARG_MESH] = &arg.since,
                [ARG_FROM - ARG_MESH] = &arg.from,         [ARG_TOPIC - ARG_MESH] = &arg.topic,
                [ARG_LIMIT - ARG_MESH] = &arg.limit,       [ARG_STATUS - ARG_MESH] = &arg.status,
                [ARG_NEW_ID - ARG_MESH] = &arg.new_id,     [ARG_SUMMARY - ARG_MESH] = &arg.summary,
                [ARG_TITLE - ARG_MESH] = &arg.title,       [ARG_BIO - ARG_MESH] = &arg.bio,
                [ARG_AVATAR - ARG_MESH] = &arg.avatar,
                [ARG_NAME - ARG_MESH] = &arg.name,         [ARG_SESSION_ID - ARG_MESH] = &arg.session_id,
        };
        unsigned given = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "hlm:p:n:f", options, NULL)) >= 0) {
                switch (c) {
                case 'h':
                        help();
                        return CTL_EXIT_OK;
                case ARG_VERSION:
                        puts("claudemeshctl " PACKAGE_VERSION);
                        return CTL_EXIT_OK;
                case ARG_JSON:
                        arg.json = true;
                        continue;
                case ARG_NO_ASK_PASSWORD:
                        arg.ask_password = false;
                        continue;
                case 'l':
                case ARG_FULL:
                        arg.full = true;
                        continue;
                case 'm': c = ARG_MESH; break;
                case 'p': c = ARG_PRIORITY; break;
                case 'n': c = ARG_LIMIT; break;
                case 'f': c = ARG_FOLLOW; break;
                case '?':
                        ctl_hint("See 'claudemeshctl --help'.");
                        return CTL_EXIT_USAGE;
                default:
                        break;
                }

                given |= 1u << (c - ARG_MESH);
                if (c == ARG_FOLLOW)
                        arg.follow = true;
                else if (c == ARG_NO_TOOLS)
                        arg.no_tools = true;
                else if (c == ARG_PRINT)
                        arg.print = true;
                else if (c == ARG_VISIBLE) {
                        arg.visible = parse_boolean(optarg);
                        if (arg.visible < 0)
                                return ctl_usage_error("--visible takes yes or no, not '%s'.", optarg);
                } else if (c == ARG_CAPABILITY) {
                        r = add_string(&arg.capabilities, &arg.n_capabilities, optarg);
                        if (r < 0)
                                return ctl_error_errno(r, "Cannot parse the options: %m");
                } else if (c == ARG_GROUP) {
                        r = add_string(&arg.groups, &arg.n_groups, optarg);
                        if (r < 0)
                                return ctl_error_errno(r, "Cannot parse the options: %m");
                } else if (c == ARG_LIMIT && !limit_is_valid(optarg))
                        /* the daemon's own check would say "up to 100000" after a round trip,
                         * and 0 would mean its default rather than none */
                        return ctl_usage_error("--limit takes a whole number from 1 to 100000, not '%s'.", optarg);
                else if (c == ARG_SINCE && time_option_parse(optarg, &(uint64_t) { 0 }) < 0)
                        return ctl_usage_error("--since takes an ISO 8601 time or µs since the epoch, not '%s'.",
                                               optarg);
                else
                        *string_args[c - ARG_MESH] = optarg;
        }
        *ret_given = given;
        return -1;
}

static const char *option_name(unsigned bit) {
        for (size_t i = 0; options[i].name; i++)
                if (options[i].val >= ARG_MESH && 1u << (options[i].val - ARG_MESH) == bit)
                        return options[i].name;
        return "?";
}

int main(int argc, char *argv[]) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        const Verb *verb = NULL;
        const char *name;
        unsigned given = 0;
        int r, n_args;

        setlocale(LC_ALL, "");
        /* Widths of peers' text are counted with wcwidth(), which knows no wide character in a
         * locale that is not UTF-8 (C, POSIX); the output is UTF-8 whatever the locale. */
        if (MB_CUR_MAX == 1)
                (void) setlocale(LC_CTYPE, "C.UTF-8");
        r = parse_argv(argc, argv, &given);
        if (r >= 0)
                goto finish;

        /* No command means status, like timedatectl. */
        name = optind < argc ? argv[optind] : "status";
        for (size_t i = 0; i < ELEMENTSOF(verbs); i++)
                if (streq(verbs[i].name, name))
                        verb = &verbs[i];
        if (!verb) {
                r = ctl_usage_error("Unknown command '%s'.", name);
                goto finish;
        }
        n_args = optind < argc ? argc - optind - 1 : 0;
        if (n_args < verb->min_args || n_args > verb->max_args) {
                r = ctl_usage_error("'%s' takes %s%d argument%s, not %d.", verb->name,
                                    verb->min_args == verb->max_args ? "" : "up to ", verb->max_args,
                                    verb->max_args == 1 ? "" : "s", n_args);
                goto finish;
        }
        if (given & ~verb->options) {
                unsigned extra = given & ~verb->options;
                r = ctl_usage_error("--%s does not apply to '%s'.", option_name(extra & -extra), verb->name);
                goto finish;
        }

        /* setup only writes a file: it works without a session bus */
        r = verb->run == verb_setup ? CTL_EXIT_OK : bus_connect(&bus);
        if (r == CTL_EXIT_OK)
                r = verb->run(bus, n_args, argv + argc - n_args);
finish:
        free(arg.capabilities);
        free(arg.groups);
        return r;
}
