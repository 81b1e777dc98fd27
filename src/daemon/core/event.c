/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <string.h>

#include "event.h"
#include "manager.h"

int manager_subscribe(Manager *m, EventHandler handler, void *userdata) {
        assert(m);
        assert(handler);

        if (m->n_subscribers >= EVENT_SUBSCRIBERS_MAX)
                return -ENOSPC;
        m->subscribers[m->n_subscribers++] = (EventSubscriber) { handler, userdata };
        return 0;
}

void manager_unsubscribe(Manager *m, EventHandler handler, void *userdata) {
        assert(m);
        assert(handler);

        for (size_t i = 0; i < m->n_subscribers; i++)
                if (m->subscribers[i].handler == handler && m->subscribers[i].userdata == userdata) {
                        memmove(&m->subscribers[i], &m->subscribers[i + 1],
                                (m->n_subscribers - i - 1) * sizeof(EventSubscriber));
                        m->n_subscribers--;
                        return;
                }
}

int manager_emit(Manager *m, const Event *e) {
        int r;

        assert(m);
        assert(e);
        assert(e->kind >= 0 && e->kind < _EVENT_KIND_MAX);

        for (size_t i = 0; i < m->n_subscribers; i++) {
                r = m->subscribers[i].handler(m, e, m->subscribers[i].userdata);
                if (r < 0)
                        return r;
        }
        return 0;
}
