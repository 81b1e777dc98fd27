/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Stable MESSAGE_IDs of the events operators search for. They never change once released;
 * units/claudemesh.catalog explains each one. */

#define CM_MESSAGE_DAEMON_STARTED        "b69d507d495e4737940c5a1c4a5c2d06"
#define CM_MESSAGE_DAEMON_READY          "af6faf87c0584c6eb622986bd1c4ffbe"
#define CM_MESSAGE_DAEMON_STOPPING       "08eabbdb1f1c4576b0f65e1ed3189e3e"
#define CM_MESSAGE_HOST_MISMATCH         "ad303f520d5643648b454a5bebed5470"
#define CM_MESSAGE_HOST_ACCEPTED         "8f9436c4bd9f4d4ca2d365c06f04e0cb"
#define CM_MESSAGE_CONFIG_ERROR          "b8cf43ae296a4bda95aa153c7a63b154"
#define CM_MESSAGE_KEY_ARCHIVE_PROBLEM   "8423ef9f561741f2aa3c4690e7675a70"
#define CM_MESSAGE_ACCESS_DENIED         "b3d8e7f872e54079ae2b177f6d6e6af6"
#define CM_MESSAGE_PLAINTEXT_BROKER      "51f057b8115c42218ece7a33d318982b"

/* claudemesh-broker: moderation by a mesh admin over the WebSocket protocol. */
#define CM_MESSAGE_BROKER_KICK           "70fbe35df36441d99a077f426c53132c"
#define CM_MESSAGE_BROKER_DISCONNECT     "7387a07e6e9742b4a4f0a829a36331b6"
#define CM_MESSAGE_BROKER_BAN            "d4997965e62e4f1f8c017c9cacb62c6e"
#define CM_MESSAGE_BROKER_UNBAN          "3dd80623de8c4e1c8cd0857ea6b12ccc"

/* claudemesh-broker on PostgreSQL: a node stops and starts hearing the other nodes. */
#define CM_MESSAGE_BROKER_LISTEN_LOST    "a6805662ce5f4c6c8a8ca6ab42f5a22f"
#define CM_MESSAGE_BROKER_LISTEN_BACK    "1a6ccae32e584da0ac3acc71d2d0c7da"
