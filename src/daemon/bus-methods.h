/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

/* Method handlers of org.claudemesh.Daemon1 that live outside bus-manager.c. */
int method_send(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_outbox(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_requeue(sd_bus_message *msg, void *userdata, sd_bus_error *error);
int method_list_inbox(sd_bus_message *msg, void *userdata, sd_bus_error *error);

/* Reads an a{sv} whose values are all strings into values[] (matched by keys[]); an unknown key
 * or another type is an InvalidArgument error. */
int bus_read_string_options(sd_bus_message *msg, const char *const *keys, const char **values, size_t n_keys,
                            sd_bus_error *error);
