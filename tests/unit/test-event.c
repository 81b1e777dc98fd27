/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The core's event fan-out: subscribers hear each event once, in the order they subscribed; one
 * that fails stops the rest and its error reaches the core; the table of subscribers is bounded. */
#include "event.h"
#include "manager.h"
#include "tests.h"

static char heard[16];
static char A[] = "a", F[] = "f", C[] = "c", D[] = "d", E[] = "e";
static size_t n_heard;

static int handler(Manager *m, const Event *e, void *userdata) {
        const char *name = userdata;

        ASSERT_TRUE(n_heard < sizeof(heard));
        heard[n_heard++] = name[0];
        /* "f" fails message events only, as the bus does when MessageReceived cannot go out */
        return name[0] == 'f' && e->kind == EVENT_MESSAGE_RECEIVED ? -ENOTCONN : 0;
}

int main(void) {
        Manager m = { .n_subscribers = 0 };

        ASSERT_OK(manager_emit(&m, &(Event) { .kind = EVENT_STATUS_CHANGED }));

        ASSERT_OK(manager_subscribe(&m, handler, A));
        ASSERT_OK(manager_subscribe(&m, handler, F));
        ASSERT_OK(manager_subscribe(&m, handler, C));

        ASSERT_OK(manager_emit(&m, &(Event) { .kind = EVENT_STATUS_CHANGED }));
        ASSERT_EQ(n_heard, 3);
        ASSERT_TRUE(heard[0] == 'a' && heard[1] == 'f' && heard[2] == 'c');

        n_heard = 0;
        ASSERT_EQ(manager_emit(&m, &(Event) { .kind = EVENT_MESSAGE_RECEIVED }), -ENOTCONN);
        ASSERT_EQ(n_heard, 2);
        ASSERT_TRUE(heard[0] == 'a' && heard[1] == 'f');

        ASSERT_OK(manager_subscribe(&m, handler, D));
        ASSERT_EQ(manager_subscribe(&m, handler, E), -ENOSPC);

        /* a front-end that goes away hears nothing more; the others keep their order */
        manager_unsubscribe(&m, handler, F);
        n_heard = 0;
        ASSERT_OK(manager_emit(&m, &(Event) { .kind = EVENT_MESSAGE_RECEIVED }));
        ASSERT_EQ(n_heard, 3);
        ASSERT_TRUE(heard[0] == 'a' && heard[1] == 'c' && heard[2] == 'd');
        return 0;
}
