/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "macro.h"
#include "time-util.h"

/* Colour only on a terminal, and never with $NO_COLOR set (https://no-color.org) or TERM=dumb. */
bool colors_enabled(void);
const char *ansi_bold(void);
const char *ansi_red(void);
const char *ansi_green(void);
const char *ansi_yellow(void);
const char *ansi_grey(void);
const char *ansi_normal(void);

/* Errors and hints go to stderr, errors red on a terminal. The _errno and _usage_ variants
 * return the exit code to use (1 and 2); ctl_error_errno() sets errno from r for the format's
 * "%m", as systemd's log_error_errno() does. */
void ctl_error(const char *format, ...) _printf_(1, 2);
void ctl_hint(const char *format, ...) _printf_(1, 2);
int ctl_error_errno(int r, const char *format, ...) _printf_(2, 3);
int ctl_usage_error(const char *format, ...) _printf_(1, 2);

/* "just now", "3 min ago", "in 2 h", "5 days ago"; "-" for 0 (not set). */
#define RELATIVE_MAX 32
const char *format_relative(usec_t t, char buf[static RELATIVE_MAX]);
/* "Nov 29 09:21:03" in local time, for lines printed as things happen. */
#define CLOCK_MAX 32
const char *format_clock(usec_t t, char buf[static CLOCK_MAX]);

/*
 * Everything printed for a person passes through escape_text() (src/shared/escape.h): text from
 * peers may carry terminal escapes, and only the verbs' own colours may reach the terminal. The
 * table and field printers below escape what they are given; other output uses escape_line().
 * Where a body's newline is meant, one-line views show its first line ("…" marking the rest);
 * anywhere else a newline or tab shows as \n, \t, so that it cannot break a table or a line.
 */

/* s escaped for one line of output. malloc'd, NULL on OOM. */
char *escape_line(const char *s);

/* Display columns of UTF-8 text, as a terminal shows it (wcwidth: wide characters count two,
 * combining marks none). */
size_t display_width(const char *s);
/* True when output is complete rather than fitted: --full, or stdout is not a terminal (a pipe
 * or a file must never lose text to a cut). */
bool output_full(void);
/* A public key or id shown by its first n characters and "…" on a terminal, whole otherwise.
 * malloc'd, NULL on OOM. */
char *abbreviate_key(const char *key, size_t n);
/* The terminal's width: $COLUMNS, else the tty's, else 80. */
size_t terminal_columns(void);
/* A one-line view of s for a terminal: the first line, escaped, at most max_width columns, "…"
 * marking a cut; with output_full(), all of s escaped (a newline as \n). malloc'd, NULL on OOM. */
char *ellipsize(const char *s, size_t max_width);

/* A table printed with every column as wide as its widest cell; cells may carry a colour. On a
 * terminal (not --full) it fits the width by narrowing its shrinkable columns, cutting their
 * cells with "…"; in a pipe every cell is whole. */
typedef struct Table Table;
Table *table_new(size_t n_columns, const char *const *headers);
Table *table_free(Table *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(Table *, table_free);
/* Lets column be narrowed down to min_width columns to fit the terminal. */
void table_set_shrinkable(Table *t, size_t column, size_t min_width);
/* Adds the next cell (rows fill left to right), escaped; NULL or "" prints as "-". */
int table_add_cell(Table *t, const char *text, const char *color);
size_t table_rows(const Table *t);
/* Returns an exit code. */
int table_print(const Table *t);

/* "  Label: value" lines, labels right-aligned to width like hostnamectl's; the value escaped. */
void print_field(int width, const char *label, const char *color, const char *value);

/* --json: a whole document (pretty on a terminal), or one object per line for streams. Strings
 * stay exact; DEL, C1 and bidirectional controls, which JSON allows raw, are written as \uNNNN
 * escapes so that the document is as safe on a terminal as the human output. */
void json_print(json_object *o);
void json_print_line(json_object *o);
