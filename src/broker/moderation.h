/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Moderation by a mesh admin (member role "admin"; a session acts with its parent member's
 * role), as upstream's disconnect, kick, ban, unban and list_bans:
 *  - disconnect {target | stale | all}: close 1000 "disconnected" (the client reconnects);
 *    {"type":"disconnect_ack","kicked":[names],"affected":[names]}.
 *  - kick: the same, close 4001 "kicked", but never a control-plane connection (a member's
 *    daemon would only reconnect): those are named in "skipped_control_plane". A kicked
 *    presence leaves at once (peer_left, no grace).
 *  - ban {target}: revokes the member (display name, pubkey or pubkey prefix), closes all its
 *    connections and sessions with 4002 "banned"; its hellos are refused until unban.
 *    {"type":"ban_ack","banned":name}.
 *  - unban {target}: {"type":"unban_ack","unbanned":name}.
 *  - list_bans: {"type":"list_bans_result","bans":[{name,pubkey,revokedAt}]}.
 * Every action is logged with a MESSAGE_ID (message-ids.h). A non-admin gets error
 * "forbidden".
 */

#include "protocol.h"
#include "server.h"

void moderation_handle_kick(Conn *c, const Frame *f, bool kick);
void moderation_handle_ban(Conn *c, const Frame *f);
void moderation_handle_unban(Conn *c, const Frame *f);
void moderation_handle_list_bans(Conn *c, const Frame *f);
