/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

#include "config-build.h"
#include "inbox.h"
#include "mesh-link.h"
#include "mesh.h"

/*
 * The events of GET /v1/events (reference §2.5), raised where the bus signals of the same
 * happenings are emitted, so both surfaces see the same events. Without the /v1 API
 * (--no-compat) or while no stream is open they cost nothing.
 */

#if ENABLE_COMPAT
/* "message": a new inbox row, as MessageReceived (im->id and im->received_at set). */
void compat_event_message(Mesh *mesh, const InboxMessage *im);

/* "peer_join" / "peer_leave", as PeerJoined / PeerLeft. */
void compat_event_peer(Mesh *mesh, bool joined, const Peer *p);

/* "broker_status": mesh->state was before until now; sent only when upstream's status
 * (connecting, open, reconnecting, closed) changes with it. */
void compat_event_mesh_state(Mesh *mesh, MeshState before);
#else
/* Built without the /v1 server (-Dcompat=disabled): no stream to tell. */
static inline void compat_event_message(Mesh *mesh, const InboxMessage *im) {}
static inline void compat_event_peer(Mesh *mesh, bool joined, const Peer *p) {}
static inline void compat_event_mesh_state(Mesh *mesh, MeshState before) {}
#endif
