/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <string.h>
#include <sys/socket.h>

#include "json-util.h"
#include "macro.h"
#include "worker-channel.h"

int worker_channel_send(int fd, json_object *msg) {
        size_t len;
        const char *s = json_object_to_json_string_length(msg, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
                                                          &len);
        if (!s)
                return -ENOMEM;
        if (len > WORKER_CHANNEL_MAX)
                return -EMSGSIZE;
        for (;;) {
                ssize_t k = send(fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (k >= 0)
                        return 0;
                if (errno != EINTR)
                        return negative_errno();
        }
}

int worker_channel_recv(int fd, json_object **ret) {
        _cleanup_free_ char *buf = NULL;
        _cleanup_(json_object_putp) json_object *o = NULL;
        json_object *type;
        ssize_t k;

        buf = malloc(WORKER_CHANNEL_MAX + 1);
        if (!buf)
                return -ENOMEM;
        do
                k = recv(fd, buf, WORKER_CHANNEL_MAX + 1, MSG_DONTWAIT | MSG_TRUNC);
        while (k < 0 && errno == EINTR);
        if (k < 0)
                return negative_errno();
        if (k == 0)
                return -ECONNRESET;
        /* MSG_TRUNC reports the real size: a larger packet was cut, so refuse it whole. */
        if ((size_t) k > WORKER_CHANNEL_MAX)
                return -EBADMSG;
        buf[k] = '\0';
        if (strlen(buf) != (size_t) k)
                return -EBADMSG;

        o = json_tokener_parse(buf);
        if (!o || !json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, "type", &type) ||
            !json_object_is_type(type, json_type_string))
                return -EBADMSG;
        *ret = TAKE_PTR(o);
        return 0;
}

const char *worker_channel_type(json_object *msg) {
        json_object *type;
        if (!msg || !json_object_object_get_ex(msg, "type", &type) || !json_object_is_type(type, json_type_string))
                return "";
        return json_object_get_string(type);
}
