/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "jcs.h"
#include "error-message.h"
#include "json-util.h"
#include "macro.h"


/* A growing byte buffer that always keeps room for a terminating NUL. */
typedef struct Buffer {
        char *data;
        size_t size;
        size_t allocated;
} Buffer;

static void buffer_done(Buffer *b) {
        free(b->data);
}

static int buffer_append(Buffer *b, const void *p, size_t n) {
        if (n == 0)
                return 0;
        if (b->allocated - b->size <= n) {
                size_t want = b->size + n + 1, a = b->allocated ? b->allocated : 64;
                char *d;

                if (want <= b->size)
                        return -ENOMEM;
                while (a < want) {
                        if (a > SIZE_MAX / 2)
                                return -ENOMEM;
                        a *= 2;
                }
                d = realloc(b->data, a);
                if (!d)
                        return -ENOMEM;
                b->data = d;
                b->allocated = a;
        }
        memcpy(b->data + b->size, p, n);
        b->size += n;
        b->data[b->size] = '\0';
        return 0;
}

static int buffer_appends(Buffer *b, const char *s) {
        return buffer_append(b, s, strlen(s));
}

static int buffer_putc(Buffer *b, char c) {
        return buffer_append(b, &c, 1);
}

/* Decodes one well-formed UTF-8 sequence from s[0..n) and returns its length, or 0 when the
 * bytes are not one (overlong forms, surrogates, values above U+10FFFF, truncation). Stops at
 * the first bad byte, so a NUL-terminated string may be passed with n = 4. */
static size_t utf8_decode(const uint8_t *s, size_t n, uint32_t *ret) {
        uint32_t cp;
        size_t len;

        if (n == 0)
                return 0;
        if (s[0] < 0x80) {
                *ret = s[0];
                return 1;
        }
        if (s[0] >= 0xc2 && s[0] <= 0xdf) {
                len = 2;
                cp = s[0] & 0x1f;
        } else if ((s[0] & 0xf0) == 0xe0) {
                len = 3;
                cp = s[0] & 0x0f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                len = 4;
                cp = s[0] & 0x07;
        } else
                return 0;

        for (size_t i = 1; i < len; i++) {
                if (i >= n || (s[i] & 0xc0) != 0x80)
                        return 0;
                cp = (cp << 6) | (s[i] & 0x3f);
        }
        if ((len == 3 && cp < 0x800) || (cp >= 0xd800 && cp <= 0xdfff) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
                return 0;
        *ret = cp;
        return len;
}

static size_t utf8_encode(uint32_t cp, char buf[static 4]) {
        if (cp < 0x80) {
                buf[0] = (char) cp;
                return 1;
        }
        if (cp < 0x800) {
                buf[0] = (char) (0xc0 | (cp >> 6));
                buf[1] = (char) (0x80 | (cp & 0x3f));
                return 2;
        }
        if (cp < 0x10000) {
                buf[0] = (char) (0xe0 | (cp >> 12));
                buf[1] = (char) (0x80 | ((cp >> 6) & 0x3f));
                buf[2] = (char) (0x80 | (cp & 0x3f));
                return 3;
        }
        buf[0] = (char) (0xf0 | (cp >> 18));
        buf[1] = (char) (0x80 | ((cp >> 12) & 0x3f));
        buf[2] = (char) (0x80 | ((cp >> 6) & 0x3f));
        buf[3] = (char) (0x80 | (cp & 0x3f));
        return 4;
}

bool jcs_utf8_is_valid(const char *s, size_t size, size_t *ret_offset) {
        const uint8_t *u = (const uint8_t *) s;

        for (size_t i = 0; i < size;) {
                uint32_t cp;
                size_t n = u[i] < 0x80 ? 1 : utf8_decode(u + i, size - i, &cp);

                if (n == 0) {
                        if (ret_offset)
                                *ret_offset = i;
                        return false;
                }
                i += n;
        }
        return true;
}

/* Writes s[0..n) (valid UTF-8) as a JSON string the way RFC 8785 §3.2.2.2 wants: only '"', '\'
 * and C0 controls escaped, the five with short forms as such, the rest as lowercase \u00xx. */
static int write_string(Buffer *b, const char *s, size_t n) {
        size_t run = 0;
        int r;

        r = buffer_putc(b, '"');
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                uint8_t c = (uint8_t) s[i];
                char u[7];
                const char *esc;

                switch (c) {
                case '"':  esc = "\\\""; break;
                case '\\': esc = "\\\\"; break;
                case '\b': esc = "\\b"; break;
                case '\t': esc = "\\t"; break;
                case '\n': esc = "\\n"; break;
                case '\f': esc = "\\f"; break;
                case '\r': esc = "\\r"; break;
                default:
                        if (c >= 0x20)
                                continue;
                        snprintf(u, sizeof u, "\\u%04x", (unsigned) c);
                        esc = u;
                }
                r = buffer_append(b, s + run, i - run);
                if (r < 0)
                        return r;
                r = buffer_appends(b, esc);
                if (r < 0)
                        return r;
                run = i + 1;
        }
        r = buffer_append(b, s + run, n - run);
        if (r < 0)
                return r;
        return buffer_putc(b, '"');
}

/* A name quoted for an error message: escaped, and cut (at a character boundary) when long. */
static char *quote_for_message(const char *s, size_t n) {
        _cleanup_(buffer_done) Buffer b = { 0 };
        size_t cut = 0;

        while (cut < n && cut < 48) {
                uint32_t cp;
                size_t k = utf8_decode((const uint8_t *) s + cut, n - cut, &cp);
                if (k == 0)
                        break;
                cut += k;
        }
        if (write_string(&b, s, cut) < 0)
                return NULL;
        if (cut < n) {
                b.size--; /* the closing quote goes after the ellipsis */
                if (buffer_appends(&b, "…\"") < 0)
                        return NULL;
        }
        return TAKE_PTR(b.data);
}

/* Number parsing and printing must not follow the process locale (a decimal comma). */
static locale_t c_locale(void) {
        static locale_t cached = (locale_t) 0;
        locale_t l = __atomic_load_n(&cached, __ATOMIC_ACQUIRE), expected = (locale_t) 0;

        if (l)
                return l;
        l = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
        if (!l)
                return (locale_t) 0;
        if (!__atomic_compare_exchange_n(&cached, &expected, l, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                freelocale(l);
                return expected;
        }
        return l;
}

/* The double nearest to digits[0..k) × 10^(e - k + 1). */
static double digits_value(const char *digits, int k, int e) {
        char s[48];

        snprintf(s, sizeof s, "%.*se%d", k, digits, e - k + 1);
        return strtod(s, NULL);
}

/* Steps the k-digit decimal digits[] (first digit at 10^e) one unit in its last place up or
 * down, keeping it normalized. Returns false when it reaches zero. */
static bool digits_step(char digits[static 18], int *k, int *e, bool up) {
        int i = *k - 1;

        if (up) {
                for (; i >= 0 && digits[i] == '9'; i--)
                        digits[i] = '0';
                if (i < 0) {
                        digits[0] = '1';
                        (*e)++;
                } else
                        digits[i]++;
                return true;
        }
        /* The first digit is never 0, so the borrow stops there at the latest. */
        for (; i > 0 && digits[i] == '0'; i--)
                digits[i] = '9';
        digits[i]--;
        if (digits[0] != '0')
                return true;
        if (*k == 1)
                return false;
        memmove(digits, digits + 1, (size_t) *k - 1);
        (*k)--;
        (*e)--;
        return true;
}

/* The fewest decimal digits that read back as x > 0 (ES Number::toString steps 5-6), without
 * trailing zeros, and the decimal exponent of the first. For each precision the correctly
 * rounded candidate is tried first, being the closest; then its neighbour on the other side of
 * x, the only other candidate, which can win where x is a power of two (its round-trip
 * interval is narrower below than above). 17 digits always read back. */
static void shortest_digits(double x, char digits[static 18], int *ret_k, int *ret_e) {
        int k = 0, e = 0;

        for (int precision = 1; precision <= 17; precision++) {
                char s[48];
                const char *c;
                double back;

                snprintf(s, sizeof s, "%.*e", precision - 1, x);
                k = 0;
                for (c = s; *c != 'e'; c++)
                        if (*c >= '0' && *c <= '9')
                                digits[k++] = *c;
                e = atoi(c + 1);

                back = digits_value(digits, k, e);
                if (back == x)
                        break;
                if (precision < 17 && digits_step(digits, &k, &e, back < x) && digits_value(digits, k, e) == x)
                        break;
        }
        while (k > 1 && digits[k - 1] == '0')
                k--;
        digits[k] = '\0';
        *ret_k = k;
        *ret_e = e;
}

int jcs_format_number(double d, char buf[static JCS_NUMBER_MAX]) {
        char digits[18];
        locale_t c, old;
        char *o = buf;
        int k, n;

        if (!isfinite(d))
                return -EINVAL;
        if (d == 0) {
                /* Both zeros: ES prints -0 as "0". */
                strcpy(buf, "0");
                return 1;
        }

        c = c_locale();
        if (!c)
                return -ENOMEM;
        old = uselocale(c);
        shortest_digits(fabs(d), digits, &k, &n);
        uselocale(old);
        n++; /* ES counts n so that the value is 0.digits × 10^n */

        if (d < 0)
                *o++ = '-';
        if (k <= n && n <= 21) {
                memcpy(o, digits, (size_t) k);
                o += k;
                memset(o, '0', (size_t) (n - k));
                o += n - k;
        } else if (n > 0 && n <= 21) {
                memcpy(o, digits, (size_t) n);
                o += n;
                *o++ = '.';
                memcpy(o, digits + n, (size_t) (k - n));
                o += k - n;
        } else if (n > -6 && n <= 0) {
                *o++ = '0';
                *o++ = '.';
                memset(o, '0', (size_t) -n);
                o += -n;
                memcpy(o, digits, (size_t) k);
                o += k;
        } else {
                *o++ = digits[0];
                if (k > 1) {
                        *o++ = '.';
                        memcpy(o, digits + 1, (size_t) (k - 1));
                        o += k - 1;
                }
                o += sprintf(o, "e%c%d", n - 1 >= 0 ? '+' : '-', abs(n - 1));
        }
        *o = '\0';
        return (int) (o - buf);
}

typedef struct Parser {
        const uint8_t *text;
        size_t size;
        size_t pos;
        unsigned depth;
        char **ret_error;
} Parser;

#define parse_error(p, ...) error_setf((p)->ret_error, -EBADMSG, __VA_ARGS__)

static bool parser_at(const Parser *p, char c) {
        return p->pos < p->size && p->text[p->pos] == (uint8_t) c;
}

static bool looking_at(const Parser *p, size_t i, const char *word) {
        size_t n = strlen(word);
        return i <= p->size && p->size - i >= n && memcmp(p->text + i, word, n) == 0;
}

static void skip_whitespace(Parser *p) {
        while (p->pos < p->size && (p->text[p->pos] == ' ' || p->text[p->pos] == '\t' ||
                                    p->text[p->pos] == '\n' || p->text[p->pos] == '\r'))
                p->pos++;
}

static int unexpected(Parser *p, const char *expected) {
        uint8_t c;

        if (p->pos >= p->size)
                return parse_error(p, "The JSON text ends at byte %zu where %s was expected.", p->pos, expected);
        c = p->text[p->pos];
        if (c > 0x20 && c < 0x7f)
                return parse_error(p, "Unexpected '%c' at byte %zu of the JSON text; expected %s.", c, p->pos,
                                   expected);
        return parse_error(p, "Unexpected byte 0x%02x at byte %zu of the JSON text; expected %s.", c, p->pos,
                           expected);
}

static int non_finite(Parser *p) {
        return parse_error(p, "NaN and Infinity (byte %zu) are not JSON numbers; RFC 8785 cannot represent them.",
                           p->pos);
}

static bool parse_hex4(const Parser *p, size_t at, uint32_t *ret) {
        uint32_t v = 0;

        if (p->size < 4 || at > p->size - 4)
                return false;
        for (size_t i = at; i < at + 4; i++) {
                uint8_t c = p->text[i];
                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t) (c - 'A' + 10);
                else
                        return false;
        }
        *ret = v;
        return true;
}

/* One escape sequence at p->pos (the backslash), decoded into b. */
static int parse_escape(Parser *p, Buffer *b) {
        size_t at = p->pos;
        char out[4];
        uint32_t cp;

        if (at + 1 >= p->size)
                return parse_error(p, "The JSON text ends inside the escape sequence at byte %zu.", at);
        switch (p->text[at + 1]) {
        case '"':  cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/':  cp = '/'; break;
        case 'b':  cp = '\b'; break;
        case 'f':  cp = '\f'; break;
        case 'n':  cp = '\n'; break;
        case 'r':  cp = '\r'; break;
        case 't':  cp = '\t'; break;
        case 'u':
                if (!parse_hex4(p, at + 2, &cp))
                        return parse_error(p, "Invalid \\u escape at byte %zu of the JSON text; it needs four hex digits.",
                                           at);
                if (cp >= 0xd800 && cp <= 0xdfff) {
                        uint32_t low;

                        /* Only a high surrogate directly followed by a low one is a character. */
                        if (cp > 0xdbff || at + 7 >= p->size || p->text[at + 6] != '\\' ||
                            p->text[at + 7] != 'u' || !parse_hex4(p, at + 8, &low) || low < 0xdc00 ||
                            low > 0xdfff)
                                return parse_error(p,
                                                   "Lone UTF-16 surrogate \\u%04x at byte %zu of the JSON text; "
                                                   "RFC 8785 needs well-formed Unicode.",
                                                   (unsigned) cp, at);
                        cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
                        p->pos += 6;
                }
                p->pos += 6;
                return buffer_append(b, out, utf8_encode(cp, out));
        default:
                return parse_error(p, "Invalid escape sequence at byte %zu of the JSON text.", at);
        }
        p->pos += 2;
        return buffer_putc(b, (char) cp);
}

/* The string starting at p->pos (the quote), decoded into b. */
static int parse_string(Parser *p, Buffer *b) {
        size_t start = p->pos;
        int r;

        p->pos++;
        for (;;) {
                uint8_t c;
                uint32_t cp;
                size_t n;

                if (p->pos >= p->size)
                        return parse_error(p, "The JSON text ends inside the string that starts at byte %zu.", start);
                c = p->text[p->pos];
                if (c == '"') {
                        p->pos++;
                        return 0;
                }
                if (c == '\\') {
                        r = parse_escape(p, b);
                        if (r < 0)
                                return r;
                        continue;
                }
                if (c < 0x20)
                        return parse_error(p, "Control character 0x%02x at byte %zu must be escaped in a JSON string.",
                                           c, p->pos);
                n = utf8_decode(p->text + p->pos, p->size - p->pos, &cp);
                if (n == 0)
                        return parse_error(p, "Invalid UTF-8 at byte %zu of the JSON text; JSON must be UTF-8.", p->pos);
                r = buffer_append(b, p->text + p->pos, n);
                if (r < 0)
                        return r;
                p->pos += n;
        }
}

static bool is_digit(const Parser *p, size_t i) {
        return i < p->size && p->text[i] >= '0' && p->text[i] <= '9';
}

static int parse_number(Parser *p, struct json_object **ret) {
        _cleanup_free_ char *s = NULL;
        size_t start = p->pos, i = p->pos;
        bool integer = true;
        struct json_object *v;
        locale_t c, old;
        double d;

        if (p->text[i] == '-')
                i++;
        if (looking_at(p, i, "Infinity"))
                return non_finite(p);
        if (!is_digit(p, i)) {
                p->pos = i;
                return unexpected(p, "a digit");
        }
        if (p->text[i] == '0') {
                i++;
                if (is_digit(p, i))
                        return parse_error(p, "Number at byte %zu has a leading zero, which JSON does not allow.",
                                           start);
        } else
                while (is_digit(p, i))
                        i++;
        if (i < p->size && p->text[i] == '.') {
                integer = false;
                if (!is_digit(p, ++i)) {
                        p->pos = i;
                        return unexpected(p, "a digit after the decimal point");
                }
                while (is_digit(p, i))
                        i++;
        }
        if (i < p->size && (p->text[i] == 'e' || p->text[i] == 'E')) {
                integer = false;
                i++;
                if (i < p->size && (p->text[i] == '+' || p->text[i] == '-'))
                        i++;
                if (!is_digit(p, i)) {
                        p->pos = i;
                        return unexpected(p, "a digit in the exponent");
                }
                while (is_digit(p, i))
                        i++;
        }

        s = strndup((const char *) p->text + start, i - start);
        if (!s)
                return -ENOMEM;
        if (integer) {
                char *end;
                long long ll;

                errno = 0;
                ll = strtoll(s, &end, 10);
                if (errno == 0 && *end == '\0') {
                        v = json_object_new_int64(ll);
                        goto done;
                }
        }

        c = c_locale();
        if (!c)
                return -ENOMEM;
        old = uselocale(c);
        d = strtod(s, NULL);
        uselocale(old);
        if (!isfinite(d))
                return parse_error(p, "Number at byte %zu is too large for an IEEE 754 double; RFC 8785 cannot "
                                   "represent Infinity.", start);
        v = json_object_new_double(d);
done:
        if (!v)
                return -ENOMEM;
        p->pos = i;
        *ret = v;
        return 0;
}

static int parse_value(Parser *p, struct json_object **ret);

static int enter_container(Parser *p) {
        if (++p->depth > JCS_MAX_DEPTH)
                return parse_error(p, "JSON nesting at byte %zu is deeper than %d levels.", p->pos, JCS_MAX_DEPTH);
        p->pos++;
        skip_whitespace(p);
        return 0;
}

static int parse_array(Parser *p, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *a = NULL;
        int r;

        r = enter_container(p);
        if (r < 0)
                return r;
        a = json_object_new_array();
        if (!a)
                return -ENOMEM;
        if (parser_at(p, ']'))
                p->pos++;
        else
                for (;;) {
                        struct json_object *v = NULL;

                        r = parse_value(p, &v);
                        if (r < 0)
                                return r;
                        if (json_object_array_add(a, v) < 0) {
                                json_object_put(v);
                                return -ENOMEM;
                        }
                        skip_whitespace(p);
                        if (parser_at(p, ']')) {
                                p->pos++;
                                break;
                        }
                        if (!parser_at(p, ','))
                                return unexpected(p, "',' or ']'");
                        p->pos++;
                }
        p->depth--;
        *ret = TAKE_PTR(a);
        return 0;
}

static int parse_object(Parser *p, struct json_object **ret) {
        _cleanup_(json_object_putp) struct json_object *o = NULL;
        int r;

        r = enter_container(p);
        if (r < 0)
                return r;
        o = json_object_new_object();
        if (!o)
                return -ENOMEM;
        if (parser_at(p, '}'))
                p->pos++;
        else
                for (;;) {
                        _cleanup_(buffer_done) Buffer key = { 0 };
                        struct json_object *v = NULL;
                        size_t key_at;

                        skip_whitespace(p);
                        if (!parser_at(p, '"'))
                                return unexpected(p, "a string naming an object member");
                        key_at = p->pos;
                        r = parse_string(p, &key);
                        if (r < 0)
                                return r;
                        if (key.size > 0 && memchr(key.data, '\0', key.size))
                                return parse_error(p, "Object member name at byte %zu contains U+0000, which is not "
                                                   "supported.", key_at);
                        r = buffer_append(&key, "", 1);
                        if (r < 0)
                                return r;
                        /* json-c would silently keep the last of duplicate names; RFC 8785 forbids them. */
                        if (json_object_object_get_ex(o, key.data, NULL)) {
                                _cleanup_free_ char *q = quote_for_message(key.data, key.size - 1);
                                if (!q)
                                        return -ENOMEM;
                                return parse_error(p, "Duplicate object member name %s at byte %zu; RFC 8785 needs "
                                                   "unique names.", q, key_at);
                        }

                        skip_whitespace(p);
                        if (!parser_at(p, ':'))
                                return unexpected(p, "':'");
                        p->pos++;
                        r = parse_value(p, &v);
                        if (r < 0)
                                return r;
                        if (json_object_object_add(o, key.data, v) < 0) {
                                json_object_put(v);
                                return -ENOMEM;
                        }
                        skip_whitespace(p);
                        if (parser_at(p, '}')) {
                                p->pos++;
                                break;
                        }
                        if (!parser_at(p, ','))
                                return unexpected(p, "',' or '}'");
                        p->pos++;
                }
        p->depth--;
        *ret = TAKE_PTR(o);
        return 0;
}

static int parse_value(Parser *p, struct json_object **ret) {
        skip_whitespace(p);
        if (p->pos >= p->size)
                return unexpected(p, "a JSON value");

        switch (p->text[p->pos]) {
        case '{':
                return parse_object(p, ret);
        case '[':
                return parse_array(p, ret);
        case '"': {
                _cleanup_(buffer_done) Buffer b = { 0 };
                size_t start = p->pos;
                int r = parse_string(p, &b);

                if (r < 0)
                        return r;
                if (b.size > INT_MAX)
                        return parse_error(p, "String at byte %zu is too long.", start);
                *ret = json_object_new_string_len(b.data ? b.data : "", (int) b.size);
                return *ret ? 0 : -ENOMEM;
        }
        case 't':
        case 'f':
                if (looking_at(p, p->pos, "true") || looking_at(p, p->pos, "false")) {
                        bool t = p->text[p->pos] == 't';
                        *ret = json_object_new_boolean(t);
                        if (!*ret)
                                return -ENOMEM;
                        p->pos += t ? 4 : 5;
                        return 0;
                }
                break;
        case 'n':
                if (looking_at(p, p->pos, "null")) {
                        *ret = NULL;
                        p->pos += 4;
                        return 0;
                }
                break;
        case 'N':
        case 'I':
                if (looking_at(p, p->pos, "NaN") || looking_at(p, p->pos, "Infinity"))
                        return non_finite(p);
                break;
        default:
                if (p->text[p->pos] == '-' || (p->text[p->pos] >= '0' && p->text[p->pos] <= '9'))
                        return parse_number(p, ret);
        }
        return unexpected(p, "a JSON value");
}

int jcs_parse(const char *text, size_t size, struct json_object **ret, char **ret_error) {
        _cleanup_(json_object_putp) struct json_object *v = NULL;
        Parser p = {
                .text = (const uint8_t *) text,
                .size = size,
                .ret_error = ret_error,
        };
        int r;

        r = parse_value(&p, &v);
        if (r < 0)
                return r;
        skip_whitespace(&p);
        if (p.pos < p.size)
                return unexpected(&p, "the end of the text after the JSON value");
        *ret = TAKE_PTR(v);
        return 0;
}

/* Orders two (valid UTF-8) names by their UTF-16 code units, as JavaScript's sort() does:
 * unlike byte or code point order, a character above U+FFFF (high surrogate 0xD800-0xDBFF)
 * sorts before one in U+E000-U+FFFF. */
static int compare_utf16(const void *a, const void *b) {
        const uint8_t *x = *(const uint8_t *const *) a, *y = *(const uint8_t *const *) b;

        for (;;) {
                uint32_t cx = 0, cy = 0, ux, uy; /* always decoded: the names were validated */
                size_t nx, ny;

                if (*x == '\0' || *y == '\0')
                        return (*x != '\0') - (*y != '\0');
                nx = utf8_decode(x, 4, &cx);
                ny = utf8_decode(y, 4, &cy);
                if (cx != cy) {
                        ux = cx < 0x10000 ? cx : 0xd800 + ((cx - 0x10000) >> 10);
                        uy = cy < 0x10000 ? cy : 0xd800 + ((cy - 0x10000) >> 10);
                        if (ux != uy)
                                return ux < uy ? -1 : 1;
                        return cx < cy ? -1 : 1;
                }
                x += nx;
                y += ny;
        }
}

static double number_value(struct json_object *v) {
        int64_t i;

        if (json_object_is_type(v, json_type_double))
                return json_object_get_double(v);
        /* json-c clamps a uint64 above INT64_MAX to INT64_MAX here; ask for the uint64 then. */
        i = json_object_get_int64(v);
        if (i == INT64_MAX)
                return (double) json_object_get_uint64(v);
        return (double) i;
}

static int canonicalize_value(Buffer *b, struct json_object *v, unsigned depth, char **ret_error);

static int canonicalize_object(Buffer *b, struct json_object *v, unsigned depth, char **ret_error) {
        _cleanup_free_ const char **names = NULL;
        struct json_object_iterator it, end;
        size_t n = (size_t) json_object_object_length(v), i = 0;
        int r;

        if (n == 0)
                return buffer_appends(b, "{}");
        names = calloc(n, sizeof *names);
        if (!names)
                return -ENOMEM;
        it = json_object_iter_begin(v);
        end = json_object_iter_end(v);
        for (; !json_object_iter_equal(&it, &end) && i < n; json_object_iter_next(&it)) {
                size_t bad;

                names[i] = json_object_iter_peek_name(&it);
                if (!jcs_utf8_is_valid(names[i], strlen(names[i]), &bad))
                        return error_setf(ret_error, -EINVAL, "Object member name is not valid UTF-8 (byte %zu); "
                                         "RFC 8785 needs well-formed Unicode.", bad);
                i++;
        }
        qsort(names, i, sizeof *names, compare_utf16);

        for (size_t k = 0; k < i; k++) {
                struct json_object *child = NULL;

                r = buffer_putc(b, k == 0 ? '{' : ',');
                if (r < 0)
                        return r;
                r = write_string(b, names[k], strlen(names[k]));
                if (r < 0)
                        return r;
                r = buffer_putc(b, ':');
                if (r < 0)
                        return r;
                (void) json_object_object_get_ex(v, names[k], &child);
                r = canonicalize_value(b, child, depth + 1, ret_error);
                if (r < 0)
                        return r;
        }
        return buffer_putc(b, '}');
}

static int canonicalize_value(Buffer *b, struct json_object *v, unsigned depth, char **ret_error) {
        int r;

        switch (json_object_get_type(v)) {
        case json_type_null:
                return buffer_appends(b, "null");
        case json_type_boolean:
                return buffer_appends(b, json_object_get_boolean(v) ? "true" : "false");
        case json_type_int:
        case json_type_double: {
                char num[JCS_NUMBER_MAX];

                r = jcs_format_number(number_value(v), num);
                if (r == -EINVAL)
                        return error_setf(ret_error, -EINVAL,
                                         "NaN and Infinity cannot be represented in RFC 8785 canonical JSON.");
                if (r < 0)
                        return r;
                return buffer_append(b, num, (size_t) r);
        }
        case json_type_string: {
                const char *s = json_object_get_string(v);
                size_t n = (size_t) json_object_get_string_len(v), bad;

                if (!jcs_utf8_is_valid(s, n, &bad))
                        return error_setf(ret_error, -EINVAL, "String value is not valid UTF-8 (byte %zu); RFC 8785 "
                                         "needs well-formed Unicode.", bad);
                return write_string(b, s, n);
        }
        case json_type_array:
        case json_type_object:
                if (depth >= JCS_MAX_DEPTH)
                        return error_setf(ret_error, -EINVAL, "JSON nesting is deeper than %d levels.", JCS_MAX_DEPTH);
                if (json_object_is_type(v, json_type_object))
                        return canonicalize_object(b, v, depth, ret_error);

                r = buffer_putc(b, '[');
                if (r < 0)
                        return r;
                for (size_t i = 0, n = json_object_array_length(v); i < n; i++) {
                        if (i > 0) {
                                r = buffer_putc(b, ',');
                                if (r < 0)
                                        return r;
                        }
                        r = canonicalize_value(b, json_object_array_get_idx(v, i), depth + 1, ret_error);
                        if (r < 0)
                                return r;
                }
                return buffer_putc(b, ']');
        }
        return error_setf(ret_error, -EINVAL, "Unknown json-c value type %d.", (int) json_object_get_type(v));
}

int jcs_canonicalize(struct json_object *v, char **ret, size_t *ret_size, char **ret_error) {
        _cleanup_(buffer_done) Buffer b = { 0 };
        int r;

        r = canonicalize_value(&b, v, 0, ret_error);
        if (r < 0)
                return r;
        if (ret_size)
                *ret_size = b.size;
        *ret = TAKE_PTR(b.data);
        return 0;
}

int jcs_canonicalize_text(const char *text, size_t size, char **ret, size_t *ret_size, char **ret_error) {
        _cleanup_(json_object_putp) struct json_object *v = NULL;
        int r;

        r = jcs_parse(text, size, &v, ret_error);
        if (r < 0)
                return r;
        return jcs_canonicalize(v, ret, ret_size, ret_error);
}
