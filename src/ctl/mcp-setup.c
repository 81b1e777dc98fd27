/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "fileio.h"
#include "json-util.h"
#include "output.h"

/* ~/.claude.json also holds Claude Code's per-project history, which grows. */
#define CLAUDE_JSON_MAX (256 * 1024 * 1024)
#define SERVER_NAME "claudemesh"

/* {"command": "<this claudemeshctl>", "args": ["mcp", …]} */
static int server_entry(json_object **ret) {
        _cleanup_(json_object_putp) json_object *entry = json_object_new_object(), *args = json_object_new_array();
        _cleanup_free_ char *self = realpath("/proc/self/exe", NULL);

        if (!self)
                return negative_errno();
        if (!entry || !args)
                return -ENOMEM;
        json_object_array_add(args, json_object_new_string("mcp"));
        if (arg.mesh) {
                json_object_array_add(args, json_object_new_string("--mesh"));
                json_object_array_add(args, json_object_new_string(arg.mesh));
        }
        if (arg.no_tools)
                json_object_array_add(args, json_object_new_string("--no-tools"));
        json_object_object_add(entry, "command", json_object_new_string(self));
        json_object_object_add(entry, "args", TAKE_PTR(args));
        *ret = TAKE_PTR(entry);
        return 0;
}

static const char *json_text(json_object *o) {
        /* two-space indentation, as Claude Code writes the file */
        return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
                                                         JSON_C_TO_STRING_NOSLASHESCAPE);
}

static int print_only(json_object *entry) {
        _cleanup_(json_object_putp) json_object *doc = json_object_new_object(), *servers = json_object_new_object();

        if (!doc || !servers)
                return ctl_error_errno(-ENOMEM, "Cannot build the entry: %m");
        json_object_object_add(servers, SERVER_NAME, json_object_get(entry));
        json_object_object_add(doc, "mcpServers", TAKE_PTR(servers));
        printf("%s\n", json_text(doc));
        return CTL_EXIT_OK;
}

/* The file as it is: 0 with *ret (a new object when the file is missing or blank), or an exit
 * code having said why it will not be touched. */
static int read_config(const char *path, json_object **ret, char **ret_text, struct stat *ret_stat) {
        _cleanup_free_ char *text = NULL;
        size_t size;
        int r;

        r = read_full_file(path, CLAUDE_JSON_MAX, &text, &size, ret_stat);
        if (r == -ENOENT) {
                *ret = json_object_new_object();
                *ret_text = NULL;
                ret_stat->st_mode = S_IFREG | 0600;
                return *ret ? 0 : ctl_error_errno(-ENOMEM, "Cannot read %s: %m", path);
        }
        if (r < 0)
                return ctl_error_errno(r, "Cannot read %s: %m", path);
        if (strspn(text, " \t\r\n") == size)
                *ret = json_object_new_object();
        else if (json_parse_strict(text, size, ret) < 0 || !json_object_is_type(*ret, json_type_object)) {
                ctl_error("%s is not a JSON object, so it was left alone: nothing was changed.", path);
                ctl_hint("Fix it (Claude Code rewrites it when it starts), or move it away and run "
                         "'claudemeshctl setup claude-code' again; 'claudemeshctl setup claude-code --print' shows "
                         "the entry to add by hand.");
                return CTL_EXIT_FAILURE;
        }
        if (!*ret)
                return ctl_error_errno(-ENOMEM, "Cannot read %s: %m", path);
        *ret_text = TAKE_PTR(text);
        return 0;
}

int verb_setup(sd_bus *bus, int argc, char **argv) {
        _cleanup_(json_object_putp) json_object *entry = NULL, *config = NULL;
        _cleanup_free_ char *path = NULL, *backup = NULL, *old_text = NULL;
        json_object *servers, *existing;
        const char *home = getenv("HOME"), *text;
        struct stat st = { 0 };
        int r;

        if (!streq(argv[0], "claude-code"))
                return ctl_usage_error("Unknown setup target '%s'; the one there is: claude-code.", argv[0]);
        r = server_entry(&entry);
        if (r < 0)
                return ctl_error_errno(r, "Cannot find the path of claudemeshctl: %m");
        if (arg.print)
                return print_only(entry);

        if (!home || home[0] != '/')
                return ctl_usage_error("$HOME is not set to an absolute path; Claude Code's config lives there.");
        if (asprintf(&path, "%s/.claude.json", home) < 0 || asprintf(&backup, "%s.bak", path) < 0)
                return ctl_error_errno(-ENOMEM, "Cannot set up Claude Code: %m");
        r = read_config(path, &config, &old_text, &st);
        if (r != 0)
                return r;

        if (!json_object_object_get_ex(config, "mcpServers", &servers) || json_object_is_type(servers, json_type_null)) {
                servers = json_object_new_object();
                if (!servers || json_object_object_add(config, "mcpServers", servers) < 0)
                        return ctl_error_errno(-ENOMEM, "Cannot set up Claude Code: %m");
        } else if (!json_object_is_type(servers, json_type_object)) {
                ctl_error("\"mcpServers\" in %s is not an object, so the file was left alone: nothing was changed.",
                          path);
                ctl_hint("Fix it, or add the entry 'claudemeshctl setup claude-code --print' shows by hand.");
                return CTL_EXIT_FAILURE;
        }
        if (json_object_object_get_ex(servers, SERVER_NAME, &existing) && json_object_equal(existing, entry)) {
                printf("%s already starts claudemeshctl mcp; nothing changed.\n", path);
                return CTL_EXIT_OK;
        }
        if (json_object_object_add(servers, SERVER_NAME, json_object_get(entry)) < 0)
                return ctl_error_errno(-ENOMEM, "Cannot set up Claude Code: %m");

        /* The backup keeps the bytes as they were, with the file's mode (it holds the user's
         * history and keys to services). */
        if (old_text) {
                r = write_file_atomic(backup, old_text, strlen(old_text), st.st_mode & 07777);
                if (r < 0)
                        return ctl_error_errno(r, "Cannot back %s up to %s; nothing was changed: %m", path, backup);
        }
        text = json_text(config);
        {
                _cleanup_free_ char *line = NULL;

                if (asprintf(&line, "%s\n", text) < 0)
                        return ctl_error_errno(-ENOMEM, "Cannot set up Claude Code: %m");
                r = write_file_atomic(path, line, strlen(line), st.st_mode & 07777);
        }
        if (r < 0)
                return ctl_error_errno(r, "Cannot write %s: %m", path);

        printf("Added the MCP server \"" SERVER_NAME "\" to %s%s%s%s.\n", path, old_text ? " (the old file is " : "",
               old_text ? backup : "", old_text ? ")" : "");
        printf("Start Claude Code with the channel enabled:\n"
               "  claude --dangerously-load-development-channels server:" SERVER_NAME "\n");
        return CTL_EXIT_OK;
}
