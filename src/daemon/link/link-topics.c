/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdlib.h>
#include <string.h>

#include "json-util.h"
#include "log.h"
#include "manager.h"
#include "mesh-link-internal.h"

/* The broker answers topic_list at once; a refresh that takes longer falls back to the cache. */
#define TOPICS_QUERY_TIMEOUT_USEC (3 * USEC_PER_SEC)
#define TOPICS_REQ_ID "daemon-topics"

static void topic_done(TopicEntry *t) {
        free(t->id);
        free(t->name);
        *t = (TopicEntry) { 0 };
}

void link_topics_clear(MeshLink *l) {
        for (size_t i = 0; i < l->n_topics; i++)
                topic_done(&l->topics[i]);
        l->topics = mfree(l->topics);
        l->n_topics = 0;
}

/* Hands the waiters over before calling them, so a callback may ask again. */
static void answer_topic_waiters(MeshLink *l) {
        _cleanup_free_ TopicsWaiter *waiters = TAKE_PTR(l->topic_waiters);
        size_t n = l->n_topic_waiters;

        l->n_topic_waiters = 0;
        l->topics_timer = sd_event_source_disable_unref(l->topics_timer);
        for (size_t i = 0; i < n; i++)
                waiters[i].done(waiters[i].userdata);
}

void link_topics_cancel(MeshLink *l) {
        answer_topic_waiters(l);
}

static int on_topics_timeout(sd_event_source *s, uint64_t usec, void *userdata) {
        MeshLink *l = userdata;

        log_info("Mesh %s: the broker did not list its topics within 3 s; using the ones known", l->mesh->entry->slug);
        answer_topic_waiters(l);
        return 0;
}

int link_topics_request(MeshLink *l) {
        _cleanup_(json_object_putp) json_object *f = json_object_new_object();

        assert(l);

        if (!f || json_object_object_add(f, "type", json_object_new_string("topic_list")) < 0 ||
            json_object_object_add(f, "_reqId", json_object_new_string(TOPICS_REQ_ID)) < 0)
                return -ENOMEM;
        return mesh_link_send_frame(l, f);
}

int mesh_link_query_topics(MeshLink *l, MeshLinkTopicsDone done, void *userdata) {
        TopicsWaiter *grown;
        int r;

        assert(l);

        if (l->state != LINK_CONNECTED) {
                done(userdata);
                return 0;
        }
        grown = reallocarray(l->topic_waiters, l->n_topic_waiters + 1, sizeof(TopicsWaiter));
        if (!grown)
                return -ENOMEM;
        l->topic_waiters = grown;
        if (!l->topics_timer) {
                r = sd_event_add_time_relative(l->mesh->manager->event, &l->topics_timer, CLOCK_MONOTONIC,
                                               TOPICS_QUERY_TIMEOUT_USEC, 0, on_topics_timeout, l);
                if (r < 0)
                        return r;
                if (link_topics_request(l) < 0) {
                        l->topics_timer = sd_event_source_disable_unref(l->topics_timer);
                        done(userdata);
                        return 0;
                }
        }
        /* A query already out: this one rides along. */
        l->topic_waiters[l->n_topic_waiters++] = (TopicsWaiter) { done, userdata };
        return 0;
}

void link_topics_replace(MeshLink *l, json_object *topics) {
        size_t n = json_object_array_length(topics), k = 0;
        TopicEntry *list = calloc(n + 1, sizeof(TopicEntry));

        assert(l);

        if (!list) {
                log_error("Mesh %s: out of memory reading the topic list", l->mesh->entry->slug);
                answer_topic_waiters(l);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                json_object *t = json_object_array_get_idx(topics, i);
                const char *id = json_string_member(t, "id"), *name = json_string_member(t, "name");

                /* The worker checked each (a token id, a name); skip rather than trust otherwise. */
                if (!id || !name)
                        continue;
                list[k] = (TopicEntry) { .id = strdup(id), .name = strdup(name) };
                if (!list[k].id || !list[k].name) {
                        topic_done(&list[k]);
                        continue;
                }
                k++;
        }
        link_topics_clear(l);
        l->topics = list;
        l->n_topics = k;
        log_debug("Mesh %s: %zu topic(s) known", l->mesh->entry->slug, k);
        answer_topic_waiters(l);
}

int mesh_link_topic_names(const MeshLink *l, TopicName **ret, size_t *ret_n) {
        TopicName *names = calloc(l->n_topics + 1, sizeof(TopicName));

        assert(l);

        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_topics; i++)
                names[i] = (TopicName) { .id = l->topics[i].id, .name = l->topics[i].name };
        *ret = names;
        *ret_n = l->n_topics;
        return 0;
}
