/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/* Reconnect delays, wire-protocol §1 and field lessons §5.5: the cap grows 1, 2, 4, 8, 16,
 * 30 s with the attempt (and stays at 30 s), the delay is uniform in [0, cap) ("full
 * jitter", so a broker restart does not bring every client back in lockstep), and the
 * attempt count goes back to 0 on hello_ack. */
uint64_t backoff_cap_ms(unsigned attempt);

/* The delay for this attempt, given 32 random bits: random % cap. */
uint64_t backoff_delay_ms(unsigned attempt, uint32_t random);

/* Random bits from getrandom(2), which works inside the sandbox. */
uint32_t backoff_random(void);
