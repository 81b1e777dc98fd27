/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stddef.h>
#include <stdint.h>

#include "macro.h"
#include "mesh-config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(mesh_config_freep) MeshConfig *c = NULL;
        _cleanup_free_ char *error = NULL;

        /* Any outcome is fine as long as it is one of the documented ones. */
        if (mesh_config_parse((const char *) data, size, "/fuzz/config.json", &c, &error) < 0)
                return 0;
        for (size_t i = 0; i < c->n_meshes; i++)
                (void) mesh_config_find_slug(c, c->meshes[i].slug);
        return 0;
}
