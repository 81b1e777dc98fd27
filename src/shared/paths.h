/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Where claudemesh keeps things. Each returns a malloc'd absolute path or a negative errno. */

/* $CLAUDEMESH_CONFIG_DIR (an empty value counts as unset), else $HOME/.claudemesh. */
int path_config_dir(char **ret);

/* <config dir>/config.json */
int path_config_file(char **ret);

/* $STATE_DIRECTORY (first entry, as systemd sets it) when set, else
 * $XDG_STATE_HOME/claudemesh, else $HOME/.local/state/claudemesh. */
int path_state_dir(char **ret);
