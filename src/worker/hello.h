/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include <json-c/json.h>

#include "config.h"

/* "meshId|memberId|pubkey|timestamp" (wire-protocol §2.1): what the daemon signs with the
 * member key. The timestamp is written with the same digits as the hello's JSON number. */
int hello_sign_payload(const WorkerConfig *c, int64_t timestamp_ms, char **ret);

/* The hello frame; signature is the daemon's answer, checked to be 128 hex characters
 * (-EINVAL otherwise). */
int hello_frame_new(const WorkerConfig *c, int64_t timestamp_ms, const char *signature, json_object **ret);
