/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Runs a libFuzzer target over corpus files and directories given on the command line, so the
 * targets' seeds and past crashers are replayed as regression tests by any compiler. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fileio.h"
#include "macro.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path) {
        _cleanup_free_ char *buf = NULL;
        size_t size;
        int r = read_full_file(path, 16 * 1024 * 1024, &buf, &size, NULL);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        LLVMFuzzerTestOneInput((const uint8_t *) buf, size);
        return 1;
}

int main(int argc, char *argv[]) {
        int ran = 0;

        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                if (!S_ISDIR(st.st_mode)) {
                        if (run_file(argv[i]) < 0)
                                return EXIT_FAILURE;
                        ran++;
                        continue;
                }
                struct dirent **names;
                int n = scandir(argv[i], &names, NULL, alphasort);
                if (n < 0) {
                        perror(argv[i]);
                        return EXIT_FAILURE;
                }
                for (int k = 0; k < n; k++) {
                        char path[4096];
                        if (names[k]->d_name[0] != '.') {
                                snprintf(path, sizeof path, "%s/%s", argv[i], names[k]->d_name);
                                if (run_file(path) < 0)
                                        return EXIT_FAILURE;
                                ran++;
                        }
                        free(names[k]);
                }
                free(names);
        }
        printf("%d inputs replayed\n", ran);
        return ran > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
