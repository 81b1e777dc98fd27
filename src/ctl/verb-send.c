/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>

#include "bus-util.h"
#include "ctl.h"
#include "json-util.h"
#include "output.h"

/* Far above what the broker takes once sealed (about 48 KB): the daemon says how far. */
#define STDIN_MESSAGE_MAX (1024 * 1024)

static int read_stdin_message(char **ret) {
        _cleanup_free_ char *buf = malloc(STDIN_MESSAGE_MAX + 1);
        size_t n;

        if (!buf)
                return -ENOMEM;
        n = fread(buf, 1, STDIN_MESSAGE_MAX + 1, stdin);
        if (ferror(stdin))
                return -EIO;
        if (n > STDIN_MESSAGE_MAX)
                return -EFBIG;
        /* Like $(...): trailing newlines are the input's framing, not the message. */
        while (n > 0 && buf[n - 1] == '\n')
                n--;
        buf[n] = '\0';
        if (strlen(buf) != n)
                return -EBADMSG;
        *ret = TAKE_PTR(buf);
        return 0;
}

int verb_send(sd_bus *bus, int argc, char **argv) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_free_ char *input = NULL, *shown_id = NULL, *shown_broker_id = NULL;
        const char *to = argv[0], *message = argv[1], *id, *status, *broker_id;
        int r;

        if (streq(message, "-")) {
                r = read_stdin_message(&input);
                if (r == -EBADMSG)
                        return ctl_usage_error("The message on standard input contains a NUL byte.");
                if (r < 0)
                        return ctl_error_errno(r, "Cannot read the message from standard input: %m");
                message = input;
        }

        r = bus_new_daemon_call(bus, "Send", &m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = sd_bus_message_append(m, "sss", strempty(arg.mesh), to, message);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = sd_bus_message_open_container(m, 'a', "{sv}");
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = bus_append_string_option(m, "priority", arg.priority);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = bus_append_string_option(m, "meta", arg.meta);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = bus_append_string_option(m, "reply_to_id", arg.reply_to);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = bus_append_string_option(m, "client_message_id", arg.id);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");
        r = sd_bus_message_close_container(m);
        if (r < 0)
                return ctl_error_errno(r, "Cannot build the Send call: %m");

        r = bus_call(bus, m, "send the message", &reply);
        if (r != CTL_EXIT_OK)
                return r;
        r = sd_bus_message_read(reply, "sss", &id, &status, &broker_id);
        if (r < 0)
                return ctl_error_errno(r, "Cannot read the answer to Send: %m");

        if (arg.json) {
                _cleanup_(json_object_putp) json_object *o = json_object_new_object();

                if (!o)
                        return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
                json_object_object_add(o, "client_message_id", json_object_new_string(id));
                json_object_object_add(o, "status", json_object_new_string(status));
                json_object_object_add(o, "broker_message_id", json_object_new_string(broker_id));
                json_print(o);
                return CTL_EXIT_OK;
        }

        /* The id is the caller's own, the broker's id the broker's: shown escaped all the same. */
        shown_id = escape_line(id);
        shown_broker_id = escape_line(broker_id);
        if (!shown_id || !shown_broker_id)
                return ctl_error_errno(-ENOMEM, "Cannot print the result: %m");
        if (streq(status, "done"))
                printf("Already delivered as %s (broker message id %s); nothing sent again.\n", shown_id,
                       shown_broker_id);
        else if (streq(status, "inflight"))
                printf("%s is being sent.\n", shown_id);
        else
                printf("Queued as %s.\n", shown_id);
        return CTL_EXIT_OK;
}
