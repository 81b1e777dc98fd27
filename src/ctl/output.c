/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <assert.h>
#include <stdarg.h>
#include <sys/ioctl.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

#include "ctl.h"
#include "escape.h"
#include "log.h"
#include "output.h"

bool colors_enabled(void) {
        static int cached = -1;

        if (cached < 0) {
                const char *no_color = getenv("NO_COLOR"), *term = getenv("TERM");
                cached = isatty(STDOUT_FILENO) && !(no_color && no_color[0]) && !(term && streq(term, "dumb"));
        }
        return cached;
}

static bool stderr_colors(void) {
        const char *no_color = getenv("NO_COLOR");
        return isatty(STDERR_FILENO) && !(no_color && no_color[0]);
}

#define ANSI(name, code) \
        const char *ansi_##name(void) { return colors_enabled() ? (code) : ""; }
ANSI(bold, "\033[1m")
ANSI(red, "\033[31m")
ANSI(green, "\033[32m")
ANSI(yellow, "\033[33m")
ANSI(grey, "\033[90m")
ANSI(normal, "\033[0m")

/* Errors quote what the daemon said, which may quote a peer or a broker: escaped like the rest. */
_printf_(2, 0) static void vprint_stderr(const char *color, const char *format, va_list ap) {
        _cleanup_free_ char *text = NULL, *shown = NULL;
        bool c = stderr_colors();
        int n;

        fflush(stdout);
        n = vasprintf(&text, format, ap);
        if (n >= 0)
                shown = escape_text(text, (size_t) n, SIZE_MAX, 0);
        if (c)
                fputs(color, stderr);
        fputs(shown ? shown : "(out of memory)", stderr);
        if (c)
                fputs("\033[0m", stderr);
        fputc('\n', stderr);
}

void ctl_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vprint_stderr("\033[31m", format, ap);
        va_end(ap);
}

void ctl_hint(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vprint_stderr("", format, ap);
        va_end(ap);
}

int ctl_error_errno(int r, const char *format, ...) {
        va_list ap;

        /* for the format's %m */
        errno = r < 0 ? -r : r;
        va_start(ap, format);
        vprint_stderr("\033[31m", format, ap);
        va_end(ap);
        return CTL_EXIT_FAILURE;
}

int ctl_usage_error(const char *format, ...) {
        va_list ap;

        va_start(ap, format);
        vprint_stderr("\033[31m", format, ap);
        va_end(ap);
        ctl_hint("See 'claudemeshctl --help'.");
        return CTL_EXIT_USAGE;
}

const char *format_relative(usec_t t, char buf[static RELATIVE_MAX]) {
        static const struct {
                const char *unit;
                usec_t usec;
        } units[] = {
                { "days", 24 * 3600 * USEC_PER_SEC },
                { "h", 3600 * USEC_PER_SEC },
                { "min", 60 * USEC_PER_SEC },
                { "s", USEC_PER_SEC },
        };
        usec_t now = now_usec(CLOCK_REALTIME), d;
        bool future = t > now;

        if (t == 0)
                return "-";
        d = future ? t - now : now - t;
        if (d < USEC_PER_SEC)
                return "just now";
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (d >= units[i].usec) {
                        unsigned long long n = d / units[i].usec;
                        snprintf(buf, RELATIVE_MAX, "%s%llu %s%s", future ? "in " : "", n,
                                 n == 1 && i == 0 ? "day" : units[i].unit, future ? "" : " ago");
                        break;
                }
        return buf;
}

const char *format_clock(usec_t t, char buf[static CLOCK_MAX]) {
        time_t sec = (time_t) (t / USEC_PER_SEC);
        struct tm tm;

        if (!localtime_r(&sec, &tm) || strftime(buf, CLOCK_MAX, "%b %d %H:%M:%S", &tm) == 0)
                return "-";
        return buf;
}

char *escape_line(const char *s) {
        return escape_text(s, strlen(s), SIZE_MAX, 0);
}

size_t display_width(const char *s) {
        size_t n = strlen(s), width = 0;

        for (size_t i = 0; i < n;) {
                uint32_t c;
                size_t len = utf8_decode(s + i, n - i, &c);
                int w;

                if (len == 0) {         /* escaped text has none; count a stray byte as one */
                        width++;
                        i++;
                        continue;
                }
                w = wcwidth((wchar_t) c);
                width += w < 0 ? 1 : (size_t) w;
                i += len;
        }
        return width;
}

/* The longest start of s that fits in width columns, with "…" when cut. malloc'd. */
static char *cut_to_width(const char *s, size_t width) {
        size_t n = strlen(s), used = 0, end = 0;
        char *t;

        if (display_width(s) <= width)
                return strdup(s);
        while (end < n) {
                uint32_t c;
                size_t len = utf8_decode(s + end, n - end, &c);
                int w = len > 0 ? wcwidth((wchar_t) c) : 1;

                if (len == 0)
                        len = 1;
                if (w < 0)
                        w = 1;
                if (used + (size_t) w + 1 > width)      /* keep a column for the "…" */
                        break;
                used += (size_t) w;
                end += len;
        }
        if (asprintf(&t, "%.*s…", (int) end, s) < 0)
                return NULL;
        return t;
}

char *abbreviate_key(const char *key, size_t n) {
        char *s;

        assert(key);

        if (output_full() || strlen(key) <= n)
                return strdup(key);
        if (asprintf(&s, "%.*s…", (int) n, key) < 0)
                return NULL;
        return s;
}

bool output_full(void) {
        return arg.full || !isatty(STDOUT_FILENO);
}

size_t terminal_columns(void) {
        const char *e = getenv("COLUMNS");
        struct winsize ws;
        char *end;
        unsigned long n;

        if (e && e[0]) {
                errno = 0;
                n = strtoul(e, &end, 10);
                if (errno == 0 && !*end && n > 0 && n < 10000)
                        return n;
        }
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) >= 0 && ws.ws_col > 0)
                return ws.ws_col;
        return 80;
}

char *ellipsize(const char *s, size_t max_width) {
        _cleanup_free_ char *line = NULL;

        if (output_full())
                return escape_line(s);
        line = escape_text(s, strlen(s), SIZE_MAX, ESCAPE_FIRST_LINE);
        if (!line)
                return NULL;
        return cut_to_width(line, max_width);
}

typedef struct Cell {
        char *text;
        const char *color;
} Cell;

struct Table {
        size_t n_columns, n_cells, allocated;
        const char *const *headers;
        size_t *min_widths;     /* 0: the column is never narrowed */
        Cell *cells;
};

Table *table_new(size_t n_columns, const char *const *headers) {
        Table *t = calloc(1, sizeof(Table));

        if (!t)
                return NULL;
        t->min_widths = calloc(n_columns, sizeof(size_t));
        if (!t->min_widths)
                return mfree(t);
        t->n_columns = n_columns;
        t->headers = headers;
        return t;
}

Table *table_free(Table *t) {
        if (!t)
                return NULL;
        for (size_t i = 0; i < t->n_cells; i++)
                free(t->cells[i].text);
        free(t->cells);
        free(t->min_widths);
        return mfree(t);
}

void table_set_shrinkable(Table *t, size_t column, size_t min_width) {
        assert(t);
        assert(column < t->n_columns);
        assert(min_width > 0);

        t->min_widths[column] = min_width;
}

int table_add_cell(Table *t, const char *text, const char *color) {
        char *copy;

        assert(t);

        if (t->n_cells == t->allocated) {
                size_t n = t->allocated ? t->allocated * 2 : 16 * t->n_columns;
                Cell *c = reallocarray(t->cells, n, sizeof(Cell));
                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->allocated = n;
        }
        copy = escape_line(text && text[0] ? text : "-");
        if (!copy)
                return -ENOMEM;
        t->cells[t->n_cells++] = (Cell) { .text = copy, .color = color };
        return 0;
}

size_t table_rows(const Table *t) {
        return t->n_cells / t->n_columns;
}

static void print_cell(const char *text, const char *color, size_t width, bool last) {
        bool c = color && color[0] && colors_enabled();
        size_t w = display_width(text);

        printf("%s%s%s", c ? color : "", text, c ? ansi_normal() : "");
        if (!last)
                printf("%*s", (int) (width - (w < width ? w : width) + 2), "");
}

/* On a terminal a table that is too wide gives up columns from its widest shrinkable column,
 * one at a time, down to each one's minimum; in a pipe and with --full nothing is cut. */
static void fit_widths(const Table *t, size_t *widths) {
        size_t total = 0, room;

        if (output_full())
                return;
        for (size_t c = 0; c < t->n_columns; c++)
                total += widths[c] + (c + 1 < t->n_columns ? 2 : 0);
        room = terminal_columns();
        while (total > room) {
                size_t widest = SIZE_MAX;

                for (size_t c = 0; c < t->n_columns; c++)
                        if (t->min_widths[c] > 0 && widths[c] > t->min_widths[c] &&
                            (widest == SIZE_MAX || widths[c] > widths[widest]))
                                widest = c;
                if (widest == SIZE_MAX)
                        return;
                widths[widest]--;
                total--;
        }
}

int table_print(const Table *t) {
        _cleanup_free_ size_t *widths = calloc(t->n_columns, sizeof(size_t));

        if (!widths)
                return ctl_error_errno(-ENOMEM, "Cannot print a table: %m");

        for (size_t c = 0; c < t->n_columns; c++)
                widths[c] = display_width(t->headers[c]);
        for (size_t i = 0; i < t->n_cells; i++)
        {
                size_t w = display_width(t->cells[i].text);

                if (w > widths[i % t->n_columns])
                        widths[i % t->n_columns] = w;
        }
        fit_widths(t, widths);

        for (size_t c = 0; c < t->n_columns; c++)
                print_cell(t->headers[c], ansi_bold(), widths[c], c + 1 == t->n_columns);
        putchar('\n');
        for (size_t i = 0; i < t->n_cells; i++) {
                size_t c = i % t->n_columns;
                _cleanup_free_ char *cut = cut_to_width(t->cells[i].text, widths[c]);

                if (!cut)
                        return ctl_error_errno(-ENOMEM, "Cannot print a table: %m");
                print_cell(cut, t->cells[i].color, widths[c], c + 1 == t->n_columns);
                if (c + 1 == t->n_columns)
                        putchar('\n');
        }
        return CTL_EXIT_OK;
}

void print_field(int width, const char *label, const char *color, const char *value) {
        _cleanup_free_ char *shown = escape_line(value && value[0] ? value : "-");
        bool c = color && color[0] && colors_enabled();

        printf("%*s: %s%s%s\n", width, label, c ? color : "", shown ? shown : "(out of memory)",
               c ? ansi_normal() : "");
}

/* JSON text with the characters escape_text() shows escaped written as \uNNNN: outside strings
 * JSON is ASCII, so every one of them is inside a string, where the escape means the same. */
static void print_json_text(const char *s) {
        size_t n = strlen(s);

        for (size_t i = 0; i < n;) {
                uint32_t c;
                size_t len = utf8_decode(s + i, n - i, &c);

                if (len > 0 && (c == 0x7F || unichar_is_unsafe(c)))
                        printf("\\u%04x", (unsigned) c);
                else
                        fwrite(s + i, 1, len > 0 ? len : 1, stdout);
                i += len > 0 ? len : 1;
        }
        putchar('\n');
}

void json_print(json_object *o) {
        int flags = JSON_C_TO_STRING_NOSLASHESCAPE |
                    (isatty(STDOUT_FILENO) ? JSON_C_TO_STRING_PRETTY : JSON_C_TO_STRING_PLAIN);

        print_json_text(json_object_to_json_string_ext(o, flags));
}

void json_print_line(json_object *o) {
        print_json_text(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
        fflush(stdout);
}
