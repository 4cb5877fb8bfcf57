/* The event codec: validate an incoming msgpack envelope, normalize it
 * (id, time, specversion), and render it as CloudEvents JSON on demand.
 *
 * Ingest does not hand untrusted bytes to msgpack-c's unpacker: that
 * allocates containers by their declared size before reading them (a
 * 5-byte message can claim four billion map entries) and has a hard
 * 32-level stack. A small scanner below walks the raw bytes first,
 * bounding every count by the bytes left and every nesting by max_depth,
 * and checks UTF-8, ext types and non-finite floats on the way. Only
 * validated envelopes are ever unpacked (for JSON rendering). */
#include "event.h"

#include <math.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "json.h"
#include "mpack.h"
#include "retry.h" /* evb_random */

/* evb_event_reclaim_*: see event.h */
static _Thread_local int s_reclaimer;     /* this thread reclaims */
static atomic_int s_reclaiming;           /* some thread does */
static _Atomic(evb_event_t *) s_returned; /* released elsewhere */

#define MAX_TOP_ATTRS 128
#define MAX_DEPTH_LIMIT 32

static const char *const s_reject_codes[EVB_REJECT__COUNT] = {
    [EVB_REJECT_NONE] = "none",
    [EVB_REJECT_FRAMES] = "bad_frames",
    [EVB_REJECT_TOO_LARGE] = "too_large",
    [EVB_REJECT_MALFORMED] = "malformed",
    [EVB_REJECT_NOT_MAP] = "not_a_map",
    [EVB_REJECT_MISSING_TYPE] = "missing_type",
    [EVB_REJECT_BAD_TYPE] = "bad_type",
    [EVB_REJECT_BAD_UTF8] = "bad_utf8",
    [EVB_REJECT_TOO_DEEP] = "too_deep",
    [EVB_REJECT_BAD_ATTR] = "bad_attribute",
    [EVB_REJECT_BAD_VALUE] = "bad_value",
    [EVB_REJECT_UNAVAILABLE] = "unavailable",
};

const char *evb_reject_code(evb_reject_t r)
{
    if ((int)r < 0 || r >= EVB_REJECT__COUNT)
        return "unknown";
    return s_reject_codes[r];
}

/* ------------------------------------------------------------ utilities */

int evb_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        /* ASCII fast path, 8 bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ull)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned min;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (i + len > n)
            return 0;
        for (size_t k = 1; k < len; k++) {
            unsigned cc = s[i + k];
            if ((cc & 0xc0) != 0x80)
                return 0;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += len;
    }
    return 1;
}

/* evb_utf8_valid with a short-ASCII shortcut: most attribute values and
 * keys are a few ASCII bytes. */
static inline int s_utf8_ok(const uint8_t *s, size_t n)
{
    if (n >= 8 && n <= 16) { /* two overlapping words */
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        if (!((a | b) & 0x8080808080808080ull))
            return 1;
    } else if (n < 8) {
        uint8_t any = 0;
        for (size_t i = 0; i < n; i++)
            any |= s[i];
        if (!(any & 0x80))
            return 1;
    }
    return evb_utf8_valid((const char *)s, n);
}

int evb_type_valid(const char *type, size_t len)
{
    if (len == 0 || len > 255)
        return 0;
    size_t seg = 0; /* length of the current segment */
    for (size_t i = 0; i < len; i++) {
        char c = type[i];
        if (c == '.') {
            if (seg == 0)
                return 0;
            seg = 0;
            continue;
        }
        int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !((c == '_' || c == '-') && seg > 0))
            return 0;
        seg++;
    }
    return seg > 0;
}

void evb_format_time(char out[32], int64_t unix_ms)
{
    /* Runs per event when a publisher leaves out `time`: the date and
     * time of day are cached per thread for the current second, and made
     * without gmtime_r (which takes glibc's timezone lock). */
    static _Thread_local int64_t cached_secs = INT64_MIN;
    static _Thread_local char cached[20]; /* "YYYY-MM-DDTHH:MM:SS" */
    int64_t secs = unix_ms / 1000;
    int ms = (int)(unix_ms % 1000);
    if (ms < 0) {
        ms += 1000;
        secs--;
    }
    if (secs != cached_secs) {
        /* days since 1970-01-01 to a civil date (H. Hinnant's algorithm) */
        int64_t days = secs / 86400, sod = secs % 86400;
        if (sod < 0) {
            sod += 86400;
            days--;
        }
        int64_t z = days + 719468;
        int64_t era = (z >= 0 ? z : z - 146096) / 146097;
        int64_t doe = z - era * 146097;
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        int64_t mp = (5 * doy + 2) / 153;
        unsigned day = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
        unsigned mon = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
        unsigned year = (unsigned)((yoe + era * 400 + (mon <= 2)) % 10000);
        unsigned v[] = {year / 100,
                        year % 100,
                        mon,
                        day,
                        (unsigned)(sod / 3600),
                        (unsigned)(sod / 60 % 60),
                        (unsigned)(sod % 60)};
        static const char sep[] = "  --T::"; /* separator before v[i] */
        char *o = cached;
        for (int i = 0; i < 7; i++) {
            if (i >= 2)
                *o++ = sep[i];
            *o++ = (char)('0' + v[i] / 10 % 10);
            *o++ = (char)('0' + v[i] % 10);
        }
        *o = '\0';
        cached_secs = secs;
    }
    memcpy(out, cached, 19);
    char *o = out + 19;
    *o++ = '.';
    *o++ = (char)('0' + ms / 100);
    *o++ = (char)('0' + ms / 10 % 10);
    *o++ = (char)('0' + ms % 10);
    *o++ = 'Z';
    *o = '\0';
}

void evb_uuid7(char out[37], int64_t now_ms)
{
    /* RFC 9562 UUIDv7 with a 12-bit counter in rand_a (method 1), so ids
     * made within one millisecond by this process still sort in order. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t last_ms;
    static unsigned counter;
    pthread_mutex_lock(&lock);
    if (now_ms > last_ms) {
        last_ms = now_ms;
        counter = (unsigned)(evb_random() & 0x1ff); /* leave headroom */
    } else if (++counter > 0xfff) {
        last_ms++; /* counter exhausted: borrow the next millisecond */
        counter = 0;
    }
    uint64_t ms = (uint64_t)last_ms;
    unsigned ctr = counter;
    pthread_mutex_unlock(&lock);

    uint64_t rnd = evb_random();
    uint8_t b[16];
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    b[6] = (uint8_t)(0x70 | ((ctr >> 8) & 0x0f));
    b[7] = (uint8_t)(ctr & 0xff);
    for (int i = 8; i < 16; i++)
        b[i] = (uint8_t)(rnd >> (8 * (i - 8)));
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    *o = '\0';
}

int evb_time_valid(const char *s, size_t n)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (n < 20)
        return 0;
    for (size_t i = 0; i < 19; i++) {
        char c = s[i];
        if (shape[i] == 'd' ? !(c >= '0' && c <= '9')
                            : !(c == shape[i] ||
                                (shape[i] == 'T' && (c == 't' || c == ' '))))
            return 0;
    }
    int mon = (s[5] - '0') * 10 + (s[6] - '0');
    int day = (s[8] - '0') * 10 + (s[9] - '0');
    int hh = (s[11] - '0') * 10 + (s[12] - '0');
    int mm = (s[14] - '0') * 10 + (s[15] - '0');
    int ss = (s[17] - '0') * 10 + (s[18] - '0');
    if (mon < 1 || mon > 12 || day < 1 || day > 31 || hh > 23 || mm > 59 ||
        ss > 60)
        return 0;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start || i - start > 9)
            return 0;
    }
    if (i < n && (s[i] == 'Z' || s[i] == 'z'))
        return i + 1 == n;
    if (i + 6 == n && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        const char *t = s + i + 1;
        return t[0] >= '0' && t[0] <= '2' && t[1] >= '0' && t[1] <= '9' &&
               t[3] >= '0' && t[3] <= '5' && t[4] >= '0' && t[4] <= '9';
    }
    return 0;
}

/* Whether s[0..n) is valid UTF-8, adding the size of its JSON string to
 * *json: one pass over the short ones (keys, most values). */
static inline int s_text(const uint8_t *s, size_t n, size_t *json)
{
    const uint64_t highs = 0x8080808080808080u;
    if (n >= 8 && n <= 16) { /* two overlapping words */
        uint64_t a, b;
        memcpy(&a, s, 8);
        memcpy(&b, s + n - 8, 8);
        if (!((a | b) & highs) &&
            !(evb_json_word_hits(a) | evb_json_word_hits(b))) {
            *json += n + 2;
            return 1;
        }
    } else if (n < 8) {
        uint8_t any = 0, extra = 0;
        for (size_t i = 0; i < n; i++) {
            any |= s[i];
            extra |= evb_json_extra[s[i]];
        }
        if (!(any & 0x80) && !extra) {
            *json += n + 2;
            return 1;
        }
    }
#ifdef __SSE2__
    else { /* longer: ASCII with nothing to escape, sixteen bytes a test */
        const __m128i quote = _mm_set1_epi8('"');
        const __m128i bslash = _mm_set1_epi8('\\');
        const __m128i ctl = _mm_set1_epi8(0x1f);
        size_t size = n + 2, i = 0;
        for (;; i += 16) {
            size_t at = i + 16 <= n ? i : n - 16; /* the last overlaps */
            __m128i v =
                _mm_loadu_si128((const __m128i *)(const void *)(s + at));
            if (_mm_movemask_epi8(v))
                goto general; /* not ASCII */
            __m128i hit = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                    _mm_cmpeq_epi8(v, bslash)),
                                       _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v));
            if (_mm_movemask_epi8(hit))
                for (size_t b = i; b < at + 16; b++)
                    size += evb_json_extra[s[b]];
            if (at + 16 >= n) {
                *json += size;
                return 1;
            }
        }
    }
general:
#endif
    if (!evb_utf8_valid((const char *)s, n))
        return 0;
    *json += evb_json_string_size((const char *)s, n);
    return 1;
}

/* ------------------------------------------------------ msgpack scanner */

typedef struct {
    evb_reject_t why;
    char *detail;
    size_t detail_size;
} s_err_t;

static void s_fail(s_err_t *e, evb_reject_t why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void s_fail(s_err_t *e, evb_reject_t why, const char *fmt, ...)
{
    e->why = why;
    if (e->detail && e->detail_size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e->detail, e->detail_size, fmt, ap);
        va_end(ap);
    }
}

/* Codes of s_check_item, below EVB_MP_E*. */
#define SCAN_BAD_UTF8 -10
#define SCAN_EXT -11
#define SCAN_NONFINITE -12
#define SCAN_CONTAINER_KEY -13

/* What every item inside an envelope must be; sums the size of the JSON
 * it renders to into *(size_t *)ctx. */
static int s_check_item(const evb_mp_item_t *it, int is_key, void *ctx)
{
    switch (it->kind) {
    case EVB_MP_STR:
        return s_text(it->ptr, it->len, ctx) ? 0 : SCAN_BAD_UTF8;
    case EVB_MP_EXT:
        return SCAN_EXT;
    case EVB_MP_FLOAT:
        if (!isfinite(it->f))
            return SCAN_NONFINITE;
        break;
    case EVB_MP_ARRAY:
    case EVB_MP_MAP:
        if (is_key)
            return SCAN_CONTAINER_KEY;
        break;
    default:
        break;
    }
    *(size_t *)ctx += evb_json_mp_item_size(it, is_key);
    return 0;
}

/* Validate one value (and everything inside it) starting at *pp, whose
 * container nesting starts at `depth` (the envelope map is depth 1), and
 * add the size of its JSON to *json. `what` names the value for
 * messages. */
static int s_scan_value(const uint8_t **pp, const uint8_t *end, int depth,
                        int max_depth, const char *what, size_t *json,
                        s_err_t *e)
{
    switch (evb_mp_walk(pp, end, max_depth - depth, s_check_item, json)) {
    case 0:
        return 0;
    case EVB_MP_ECOUNT:
        s_fail(e, EVB_REJECT_MALFORMED,
               "%s: a container claims more items than the message holds",
               what);
        return -1;
    case EVB_MP_EDEPTH:
        s_fail(e, EVB_REJECT_TOO_DEEP, "%s: nested deeper than %d levels", what,
               max_depth);
        return -1;
    case SCAN_BAD_UTF8:
        s_fail(e, EVB_REJECT_BAD_UTF8, "%s: a string is not valid UTF-8", what);
        return -1;
    case SCAN_EXT:
        s_fail(e, EVB_REJECT_BAD_VALUE,
               "%s: msgpack ext types are not accepted", what);
        return -1;
    case SCAN_NONFINITE:
        s_fail(e, EVB_REJECT_BAD_VALUE,
               "%s: NaN and infinite floats are not accepted", what);
        return -1;
    case SCAN_CONTAINER_KEY:
        s_fail(e, EVB_REJECT_BAD_VALUE,
               "%s: a map key is an array or a map (JSON keys are strings; "
               "use a string or a number)",
               what);
        return -1;
    default:
        s_fail(e, EVB_REJECT_MALFORMED, "%s: truncated or invalid msgpack",
               what);
        return -1;
    }
}

/* Offset of the first control character (U+0000-U+001F, U+007F-U+009F)
 * in the valid UTF-8 s[0..n), or n when it has none. */
static size_t s_control_at(const uint8_t *s, size_t n)
{
    const uint64_t ones = 0x0101010101010101ull, highs = ones * 0x80;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w, del;
        memcpy(&w, s + i, 8);
        del = w ^ (ones * 0x7f); /* a zero byte where w has DEL */
        /* any byte < 0x20, DEL, or >= 0x80: look byte by byte */
        if ((((w - ones * 0x20) | (del - ones)) & ~w & highs) | (w & highs))
            break;
    }
    for (; i < n; i++) {
        uint8_t c = s[i];
        if (c < 0x20 || c == 0x7f ||
            (c == 0xc2 && i + 1 < n && s[i + 1] <= 0x9f))
            return i;
    }
    return n;
}

/* ----------------------------------------------------------------- decode */

/* Attributes the broker knows by name, classified once per key. */
enum {
    A_OTHER = 0, /* an extension */
    A_DATA,
    A_SPECVERSION,
    A_ID,
    A_SOURCE,
    A_TYPE,
    A_SUBJECT,
    A_TIME,
    A_DATACONTENTTYPE,
    A_DATASCHEMA,
    A_PROJECT, /* extensions used for routing */
    A_TICKET,
    A_AGENT,
};
/* CloudEvents core attributes, which must be strings */
#define A_IS_CORE(c) ((c) >= A_SPECVERSION && (c) <= A_DATASCHEMA)

static int s_classify(const uint8_t *name, size_t n)
{
#define IS(lit) (n == sizeof(lit) - 1 && memcmp(name, lit, n) == 0)
    switch (n) {
    case 2:
        return IS("id") ? A_ID : A_OTHER;
    case 4:
        return IS("type")   ? A_TYPE
               : IS("data") ? A_DATA
               : IS("time") ? A_TIME
                            : A_OTHER;
    case 5:
        return IS("agent") ? A_AGENT : A_OTHER;
    case 6:
        return IS("source") ? A_SOURCE : IS("ticket") ? A_TICKET : A_OTHER;
    case 7:
        return IS("subject") ? A_SUBJECT : IS("project") ? A_PROJECT : A_OTHER;
    case 10:
        return IS("dataschema") ? A_DATASCHEMA : A_OTHER;
    case 11:
        return IS("specversion") ? A_SPECVERSION : A_OTHER;
    case 15:
        return IS("datacontenttype") ? A_DATACONTENTTYPE : A_OTHER;
    default:
        return A_OTHER;
    }
#undef IS
}

typedef struct {
    const uint8_t *name;
    uint32_t name_len;
    int code;             /* A_* */
    const uint8_t *value; /* string attributes only */
    uint32_t value_len;
} s_pending_attr_t;

/* Point the event's shortcut field for `code` at a stored value. */
static void s_set_field(evb_event_t *ev, int code, const char *v)
{
    switch (code) {
    case A_TYPE:
        ev->type = v;
        break;
    case A_ID:
        ev->id = v;
        break;
    case A_TIME:
        ev->time = v;
        break;
    case A_SOURCE:
        ev->source = v;
        break;
    case A_SUBJECT:
        ev->subject = v;
        break;
    case A_PROJECT:
        ev->project = v;
        break;
    case A_TICKET:
        ev->ticket = v;
        break;
    case A_AGENT:
        ev->agent = v;
        break;
    default:
        break;
    }
}

/* Size of a msgpack str header for n bytes. */
static size_t s_str_hdr(size_t n)
{
    return n < 32 ? 1 : n < 256 ? 2 : n < 65536 ? 3 : 5;
}

static uint8_t *s_put_str(uint8_t *o, const char *s, size_t n)
{
    if (n < 32) {
        *o++ = (uint8_t)(0xa0 | n);
    } else if (n < 256) {
        *o++ = 0xd9;
        *o++ = (uint8_t)n;
    } else if (n < 65536) {
        *o++ = 0xda;
        *o++ = (uint8_t)(n >> 8);
        *o++ = (uint8_t)n;
    } else {
        *o++ = 0xdb;
        for (int i = 3; i >= 0; i--)
            *o++ = (uint8_t)(n >> (8 * i));
    }
    memcpy(o, s, n);
    return o + n;
}

static uint8_t *s_put_map_hdr(uint8_t *o, uint32_t n)
{
    if (n < 16) {
        *o++ = (uint8_t)(0x80 | n);
    } else if (n < 65536) {
        *o++ = 0xde;
        *o++ = (uint8_t)(n >> 8);
        *o++ = (uint8_t)n;
    } else {
        *o++ = 0xdf;
        for (int i = 3; i >= 0; i--)
            *o++ = (uint8_t)(n >> (8 * i));
    }
    return o;
}

/* The JSON of one more attribute, name: string, with its comma. */
static size_t s_pair_json(const char *name, const char *v, size_t n)
{
    return 1 + evb_json_string_size(name, strlen(name)) + 1 +
           evb_json_string_size(v, n);
}

evb_event_t *evb_event_decode(const void *type_frame, size_t type_len,
                              const void *envelope, size_t envelope_len,
                              const evb_limits_t *limits, int64_t now_ms,
                              evb_reject_t *why, char *detail,
                              size_t detail_size)
{
    s_err_t e = {EVB_REJECT_NONE, detail, detail_size};
    int max_depth = limits->max_depth;
    if (max_depth < 1 || max_depth > MAX_DEPTH_LIMIT)
        max_depth = MAX_DEPTH_LIMIT;
    if (detail && detail_size)
        detail[0] = '\0';

    if (type_frame && !evb_type_valid(type_frame, type_len)) {
        s_fail(&e, EVB_REJECT_BAD_TYPE,
               "the type frame is not a valid event type (dot-separated "
               "lower-case [a-z0-9_-] segments, at most 255 bytes)");
        goto refuse;
    }
    if (envelope_len > limits->max_message_size) {
        s_fail(&e, EVB_REJECT_TOO_LARGE,
               "envelope of %zu bytes exceeds max_message_size %zu",
               envelope_len, limits->max_message_size);
        goto refuse;
    }

    const uint8_t *p = envelope, *end = p + envelope_len;
    evb_mp_item_t root;
    if (evb_mp_read(&p, end, &root) < 0) {
        s_fail(&e, EVB_REJECT_MALFORMED,
               "envelope: truncated or invalid "
               "msgpack");
        goto refuse;
    }
    if (root.kind != EVB_MP_MAP) {
        s_fail(&e, EVB_REJECT_NOT_MAP, "the envelope must be a msgpack map");
        goto refuse;
    }
    if (root.len > MAX_TOP_ATTRS) {
        s_fail(&e, EVB_REJECT_BAD_ATTR,
               "the envelope has %u attributes, more than %d", root.len,
               MAX_TOP_ATTRS);
        goto refuse;
    }
    const uint8_t *body = p; /* the map's pairs, as received */

    s_pending_attr_t attrs[MAX_TOP_ATTRS];
    size_t n_attrs = 0;
    int have_id = 0, have_time = 0, have_spec = 0, have_type = 0;
    size_t strings_bytes = 0;
    /* the size of its CloudEvents JSON (s_render_json): braces, commas */
    size_t json = 2 + (root.len ? root.len - 1 : 0);
    for (uint32_t i = 0; i < root.len; i++) {
        evb_mp_item_t key;
        if (evb_mp_read(&p, end, &key) < 0) {
            s_fail(&e, EVB_REJECT_MALFORMED,
                   "envelope: truncated or invalid msgpack");
            goto refuse;
        }
        if (key.kind != EVB_MP_STR) {
            s_fail(&e, EVB_REJECT_BAD_ATTR, "attribute names must be strings");
            goto refuse;
        }
        const char *name = (const char *)key.ptr;
        int code = s_classify(key.ptr, key.len);
        /* a name we know is valid; any other is checked character by
         * character */
        int name_ok = code != A_OTHER || (key.len >= 1 && key.len <= 20);
        for (uint32_t k = 0; code == A_OTHER && name_ok && k < key.len; k++)
            name_ok = (name[k] >= 'a' && name[k] <= 'z') ||
                      (name[k] >= '0' && name[k] <= '9');
        if (!name_ok) {
            char shown[48];
            size_t sn = key.len < 40 ? key.len : 40;
            memcpy(shown, name, sn);
            shown[sn] = '\0';
            for (size_t k = 0; k < sn; k++)
                if ((unsigned char)shown[k] < 0x20 ||
                    (unsigned char)shown[k] >= 0x7f)
                    shown[k] = '?';
            s_fail(&e, EVB_REJECT_BAD_ATTR,
                   "attribute name \"%s\" is not 1-20 lower-case letters "
                   "or digits",
                   shown);
            goto refuse;
        }
        for (size_t k = 0; k < n_attrs; k++) {
            if (attrs[k].name_len == key.len &&
                memcmp(attrs[k].name, name, key.len) == 0) {
                s_fail(&e, EVB_REJECT_BAD_ATTR, "duplicate attribute \"%.*s\"",
                       (int)key.len, name);
                goto refuse;
            }
        }
        s_pending_attr_t *a = &attrs[n_attrs++];
        a->name = key.ptr;
        a->name_len = key.len;
        a->code = code;
        a->value = NULL;
        a->value_len = 0;

        if (a->code == A_DATA) {
            /* binary data renders as "data_base64" */
            const uint8_t *q = p;
            evb_mp_item_t peek;
            int bin =
                evb_mp_read(&q, end, &peek) == 0 && peek.kind == EVB_MP_BIN;
            json +=
                bin ? sizeof "\"data_base64\":" - 1 : sizeof "\"data\":" - 1;
            if (s_scan_value(&p, end, 1, max_depth, "data", &json, &e) < 0)
                goto refuse;
            continue;
        }
        evb_mp_item_t v;
        if (evb_mp_read(&p, end, &v) < 0) {
            s_fail(&e, EVB_REJECT_MALFORMED,
                   "attribute \"%.*s\": truncated or invalid msgpack",
                   (int)key.len, name);
            goto refuse;
        }
        int known = A_IS_CORE(a->code);
        if (v.kind == EVB_MP_STR) {
            /* id has its own limit (EVB_ID_MAX), checked below */
            if (v.len > limits->max_attr_len && a->code != A_ID) {
                s_fail(&e, EVB_REJECT_BAD_ATTR,
                       "attribute \"%.*s\" is %u bytes, more than "
                       "max_attr_len %zu",
                       (int)key.len, name, v.len, limits->max_attr_len);
                goto refuse;
            }
            if (!s_text(v.ptr, v.len, &json)) {
                s_fail(&e, EVB_REJECT_BAD_UTF8,
                       "attribute \"%.*s\" is not valid UTF-8", (int)key.len,
                       name);
                goto refuse;
            }
            /* attributes are C strings to plugins, filters and the
             * duplicate index: a NUL would cut them short */
            size_t at =
                limits->allow_controls ? v.len : s_control_at(v.ptr, v.len);
            if (at < v.len) {
                s_fail(&e, EVB_REJECT_BAD_ATTR,
                       "attribute \"%.*s\" holds a control character "
                       "(byte 0x%02x at offset %zu); only data may",
                       (int)key.len, name, v.ptr[at], at);
                goto refuse;
            }
            a->value = v.ptr;
            a->value_len = v.len;
            strings_bytes += v.len + 1;
        } else if (known || !(v.kind == EVB_MP_BOOL || v.kind == EVB_MP_INT ||
                              v.kind == EVB_MP_UINT)) {
            s_fail(&e, EVB_REJECT_BAD_ATTR,
                   known ? "attribute \"%.*s\" must be a string"
                         : "extension attribute \"%.*s\" must be a string, "
                           "integer or boolean",
                   (int)key.len, name);
            goto refuse;
        } else {
            json += evb_json_mp_item_size(&v, 0);
        }
        strings_bytes += key.len + 1;
        json += key.len + 3; /* "name": ([a-z0-9] or a known name) */

        if (a->code == A_TYPE) {
            have_type = 1;
            if (type_frame &&
                (v.len != type_len || memcmp(v.ptr, type_frame, type_len))) {
                s_fail(&e, EVB_REJECT_BAD_TYPE,
                       "the type frame \"%.*s\" differs from the envelope's "
                       "type \"%.*s\"",
                       (int)(type_len > 100 ? 100 : type_len),
                       (const char *)type_frame,
                       (int)(v.len > 100 ? 100 : v.len), (const char *)v.ptr);
                goto refuse;
            }
        } else if (a->code == A_ID) {
            have_id = 1;
            if (v.len == 0 || v.len > EVB_ID_MAX) {
                s_fail(&e, EVB_REJECT_BAD_ATTR,
                       "attribute \"id\" must be 1 to %d bytes", EVB_ID_MAX);
                goto refuse;
            }
        } else if (a->code == A_TIME) {
            have_time = 1;
            if (!evb_time_valid((const char *)v.ptr, v.len)) {
                s_fail(&e, EVB_REJECT_BAD_ATTR,
                       "attribute \"time\" is not an RFC 3339 timestamp");
                goto refuse;
            }
        } else if (a->code == A_SPECVERSION) {
            have_spec = 1;
            if (v.len != 3 || memcmp(v.ptr, "1.0", 3) != 0) {
                s_fail(&e, EVB_REJECT_BAD_ATTR, "specversion must be \"1.0\"");
                goto refuse;
            }
        } else if (a->code == A_SOURCE) {
            if (v.len == 0) {
                s_fail(&e, EVB_REJECT_BAD_ATTR,
                       "attribute \"source\" must not be empty");
                goto refuse;
            }
        }
    }
    if (p != end) {
        s_fail(&e, EVB_REJECT_MALFORMED, "%zu bytes follow the envelope map",
               (size_t)(end - p));
        goto refuse;
    }
    if (!have_type) {
        s_fail(&e, EVB_REJECT_MISSING_TYPE,
               "the envelope has no \"type\" attribute");
        goto refuse;
    }

    /* ---- build the event: struct, attr table, strings, msgpack ---- */
    char id_buf[37], time_buf[32];
    uint32_t added = 0;
    size_t extra = 0; /* bytes appended to the envelope */
    if (!have_spec) {
        added++;
        extra += 1 + 11 + 1 + 3;
        strings_bytes += sizeof "specversion" + sizeof "1.0";
        json += s_pair_json("specversion", "1.0", 3);
    }
    if (!have_id) {
        evb_uuid7(id_buf, now_ms);
        added++;
        extra += 1 + 2 + 1 + 36;
        strings_bytes += sizeof "id" + 37;
        json += s_pair_json("id", id_buf, 36);
    }
    if (!have_time) {
        evb_format_time(time_buf, now_ms);
        added++;
        extra += 1 + 4 + s_str_hdr(strlen(time_buf)) + strlen(time_buf);
        strings_bytes += sizeof "time" + strlen(time_buf) + 1;
        json += s_pair_json("time", time_buf, strlen(time_buf));
    }
    if (json > limits->max_rendered_size) {
        s_fail(&e, EVB_REJECT_TOO_LARGE,
               "the event renders to %zu bytes of JSON, more than "
               "max_rendered_size %zu",
               json, limits->max_rendered_size);
        goto refuse;
    }
    size_t n_table = 0;
    for (size_t i = 0; i < n_attrs; i++)
        if (attrs[i].value)
            n_table++;
    n_table += added;
    size_t body_len = (size_t)(end - body);
    size_t mp_len = added ? 5 + body_len + extra : envelope_len;
    size_t total = sizeof(evb_event_t) + n_table * sizeof(evb_attr_t) +
                   strings_bytes + mp_len;
    evb_event_t *ev = malloc(total);
    if (!ev) {
        s_fail(&e, EVB_REJECT_UNAVAILABLE, "out of memory");
        goto refuse;
    }
    memset(ev, 0, sizeof *ev);
    ev->reclaim = s_reclaimer;
    atomic_init(&ev->refs, 1);
    atomic_init(&ev->json, NULL);
    atomic_init(&ev->data_json, NULL);
    ev->accepted_ms = now_ms;
    ev->json_max = (uint32_t)json; /* <= max_rendered_size < 4 GiB */
    ev->attrs = (evb_attr_t *)(ev + 1);
    char *str = (char *)(ev->attrs + n_table);
    uint8_t *mp = (uint8_t *)str + strings_bytes;

#define ADD_ATTR(nm, nlen, val, vlen, code)                                    \
    do {                                                                       \
        evb_attr_t *at = &ev->attrs[ev->n_attrs++];                            \
        memcpy(str, (nm), (nlen));                                             \
        str[(nlen)] = '\0';                                                    \
        at->name = str;                                                        \
        str += (nlen) + 1;                                                     \
        memcpy(str, (val), (vlen));                                            \
        str[(vlen)] = '\0';                                                    \
        at->value = str;                                                       \
        s_set_field(ev, (code), str);                                          \
        str += (vlen) + 1;                                                     \
    } while (0)

    for (size_t i = 0; i < n_attrs; i++)
        if (attrs[i].value)
            ADD_ATTR(attrs[i].name, attrs[i].name_len, attrs[i].value,
                     attrs[i].value_len, attrs[i].code);
    if (!have_spec)
        ADD_ATTR("specversion", 11, "1.0", 3, A_SPECVERSION);
    if (!have_id)
        ADD_ATTR("id", 2, id_buf, 36, A_ID);
    if (!have_time)
        ADD_ATTR("time", 4, time_buf, strlen(time_buf), A_TIME);
#undef ADD_ATTR

    if (!added) {
        memcpy(mp, envelope, envelope_len);
    } else {
        /* same pairs, a new count, the filled-in attributes at the end */
        uint8_t *o = s_put_map_hdr(mp, root.len + added);
        memcpy(o, body, body_len);
        o += body_len;
        if (!have_spec) {
            o = s_put_str(o, "specversion", 11);
            o = s_put_str(o, "1.0", 3);
        }
        if (!have_id) {
            o = s_put_str(o, "id", 2);
            o = s_put_str(o, id_buf, 36);
        }
        if (!have_time) {
            o = s_put_str(o, "time", 4);
            o = s_put_str(o, time_buf, strlen(time_buf));
        }
        mp_len = (size_t)(o - mp);
    }
    ev->msgpack = mp;
    ev->msgpack_len = mp_len;

    if (why)
        *why = EVB_REJECT_NONE;
    return ev;

refuse:
    if (why)
        *why = e.why;
    return NULL;
}

evb_event_t *evb_event_load(const void *envelope, size_t len, uint64_t seq,
                            int64_t accepted_ms, char *detail,
                            size_t detail_size)
{
    /* the envelope passed validation when it was accepted (and the record
     * its checksum since): check it again, but against no limit that a
     * configuration change could have tightened meanwhile */
    const evb_limits_t open = {len, MAX_DEPTH_LIMIT, len, UINT32_MAX, 1};
    evb_reject_t why;
    evb_event_t *ev = evb_event_decode(NULL, 0, envelope, len, &open,
                                       accepted_ms, &why, detail, detail_size);
    if (ev)
        ev->seq = seq;
    return ev;
}

int evb_envelope_id(const void *envelope, size_t len, char out[EVB_ID_MAX + 1])
{
    const uint8_t *p = envelope, *end = p + len;
    evb_mp_item_t root;
    if (evb_mp_read(&p, end, &root) < 0 || root.kind != EVB_MP_MAP)
        return -1;
    s_err_t e = {EVB_REJECT_NONE, NULL, 0};
    for (uint32_t i = 0; i < root.len; i++) {
        evb_mp_item_t key;
        if (evb_mp_read(&p, end, &key) < 0 || key.kind != EVB_MP_STR)
            return -1;
        if (key.len == 2 && memcmp(key.ptr, "id", 2) == 0) {
            evb_mp_item_t v;
            if (evb_mp_read(&p, end, &v) < 0 || v.kind != EVB_MP_STR ||
                v.len > EVB_ID_MAX || !s_utf8_ok(v.ptr, v.len) ||
                s_control_at(v.ptr, v.len) < v.len)
                return -1;
            memcpy(out, v.ptr, v.len);
            out[v.len] = '\0';
            return 0;
        }
        size_t json = 0;
        if (s_scan_value(&p, end, 1, MAX_DEPTH_LIMIT, "value", &json, &e) < 0)
            return -1;
    }
    return -1;
}

evb_event_t *evb_event_retain(evb_event_t *ev)
{
    atomic_fetch_add_explicit(&ev->refs, 1, memory_order_relaxed);
    return ev;
}

static void s_event_free(evb_event_t *ev)
{
    free(atomic_load(&ev->json));
    free(atomic_load(&ev->data_json));
    free(ev);
}

void evb_event_release(evb_event_t *ev)
{
    if (!ev)
        return;
    if (atomic_fetch_sub_explicit(&ev->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (ev->reclaim && !s_reclaimer &&
        atomic_load_explicit(&s_reclaiming, memory_order_relaxed)) {
        /* push; the reclaimer only ever takes the whole list, so a plain
         * compare-and-swap push is safe (no ABA) */
        evb_event_t *head =
            atomic_load_explicit(&s_returned, memory_order_relaxed);
        do
            ev->reclaim_next = head;
        while (!atomic_compare_exchange_weak_explicit(&s_returned, &head, ev,
                                                      memory_order_release,
                                                      memory_order_relaxed));
        return;
    }
    s_event_free(ev);
}

void evb_event_reclaim_begin(void)
{
    s_reclaimer = 1;
    atomic_store(&s_reclaiming, 1);
}

size_t evb_event_reclaim(void)
{
    evb_event_t *ev =
        atomic_exchange_explicit(&s_returned, NULL, memory_order_acquire);
    size_t n = 0;
    while (ev) {
        evb_event_t *next = ev->reclaim_next;
        s_event_free(ev);
        ev = next;
        n++;
    }
    return n;
}

void evb_event_reclaim_end(void)
{
    atomic_store(&s_reclaiming, 0);
    s_reclaimer = 0;
    evb_event_reclaim();
}

const char *evb_event_attr(const evb_event_t *ev, const char *name)
{
    for (size_t i = 0; i < ev->n_attrs; i++)
        if (strcmp(ev->attrs[i].name, name) == 0)
            return ev->attrs[i].value;
    return NULL;
}

static const char *s_attr_of(const void *ev, const char *name)
{
    return evb_event_attr(ev, name);
}

int evb_sub_matches(const evb_sub_t *sub, const evb_event_t *ev)
{
    return evb_sub_matches_attrs(sub, ev->type, s_attr_of, ev);
}

/* ------------------------------------------------------------ rendering */

/* A per-thread zone for unpacking validated envelopes. */
static pthread_key_t s_zone_key;
static pthread_once_t s_zone_once = PTHREAD_ONCE_INIT;

static void s_zone_free(void *z)
{
    msgpack_zone_free(z);
}

static void s_zone_init(void)
{
    pthread_key_create(&s_zone_key, s_zone_free);
}

static msgpack_zone *s_zone(void)
{
    pthread_once(&s_zone_once, s_zone_init);
    msgpack_zone *z = pthread_getspecific(s_zone_key);
    if (!z) {
        z = msgpack_zone_new(8192);
        if (z)
            pthread_setspecific(s_zone_key, z);
    }
    return z;
}

/* Unpack the stored envelope into the thread's zone (cleared first). */
static int s_unpack(const evb_event_t *ev, msgpack_object *root)
{
    msgpack_zone *z = s_zone();
    if (!z)
        return -1;
    msgpack_zone_clear(z);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack((const char *)ev->msgpack,
                                              ev->msgpack_len, &off, z, root);
    return rc == MSGPACK_UNPACK_SUCCESS && root->type == MSGPACK_OBJECT_MAP
               ? 0
               : -1;
}

static const msgpack_object *s_find_key(const msgpack_object *map,
                                        const char *key, size_t n)
{
    if (map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == n &&
            memcmp(kv->key.via.str.ptr, key, n) == 0)
            return &kv->val;
    }
    return NULL;
}

/* Publish a rendered string into an atomic cache slot: the first writer
 * wins, later ones free their copy. */
static const char *s_cache(_Atomic(char *) *slot, _Atomic size_t *len_slot,
                           char *mine, size_t len)
{
    char *expected = NULL;
    /* the length is written before the pointer is published */
    atomic_store_explicit(len_slot, len, memory_order_relaxed);
    if (atomic_compare_exchange_strong(slot, &expected, mine))
        return mine;
    free(mine);
    return expected;
}

/* Render the stored (validated) envelope as CloudEvents JSON straight from
 * its msgpack bytes: no unpacking into a zone on the delivery path. */
static int s_render_json(const evb_event_t *ev, evb_buf_t *b)
{
    const uint8_t *p = ev->msgpack, *end = p + ev->msgpack_len;
    evb_mp_item_t root, key, v;
    if (evb_mp_read(&p, end, &root) < 0 || root.kind != EVB_MP_MAP)
        return -1;
    int rc = evb_buf_putc(b, '{');
    for (uint32_t i = 0; rc == 0 && i < root.len; i++) {
        if (evb_mp_read(&p, end, &key) < 0 || key.kind != EVB_MP_STR)
            return -1;
        if (i)
            rc |= evb_buf_putc(b, ',');
        if (key.len == 4 && memcmp(key.ptr, "data", 4) == 0) {
            const uint8_t *save = p;
            if (evb_mp_read(&p, end, &v) == 0 && v.kind == EVB_MP_BIN) {
                rc |= evb_buf_append(b, "\"data_base64\":\"", 15);
                rc |= evb_base64_encode(b, v.ptr, v.len);
                rc |= evb_buf_putc(b, '"');
                continue;
            }
            p = save;
        }
        rc |= evb_json_write_string(b, (const char *)key.ptr, key.len);
        rc |= evb_buf_putc(b, ':');
        rc |= evb_json_write_mp(b, &p, end, MAX_DEPTH_LIMIT);
    }
    rc |= evb_buf_putc(b, '}');
    return rc ? -1 : 0;
}

const char *evb_event_json(const evb_event_t *ev_c, size_t *len)
{
    evb_event_t *ev = (evb_event_t *)ev_c;
    char *done = atomic_load_explicit(&ev->json, memory_order_acquire);
    if (done) {
        if (len)
            *len = ev->json_len;
        return done;
    }
    evb_buf_t b = EVB_BUF_INIT;
    if (evb_buf_reserve(&b, ev->json_max + 1) < 0 ||
        s_render_json(ev, &b) < 0) {
        evb_buf_free(&b);
        return NULL;
    }
    size_t n;
    char *str = evb_buf_steal(&b, &n);
    const char *out = s_cache(&ev->json, &ev->json_len, str, n);
    if (len)
        *len = ev->json_len;
    return out;
}

size_t evb_event_json_into(const evb_event_t *ev, char *dst, size_t cap)
{
    const char *done = atomic_load_explicit(&ev->json, memory_order_acquire);
    if (done) { /* another instance made it already */
        if (ev->json_len < cap)
            memcpy(dst, done, ev->json_len + 1);
        return ev->json_len;
    }
    if (cap > 0) {
        evb_buf_t b = EVB_BUF_FIXED(dst, cap);
        if (s_render_json(ev, &b) == 0)
            return b.len;
    }
    /* too small (rare: callers give room for typical events): measure */
    evb_buf_t scratch = EVB_BUF_INIT;
    size_t n = s_render_json(ev, &scratch) == 0 ? scratch.len : 0;
    evb_buf_free(&scratch);
    return n;
}

const char *evb_event_data_json(const evb_event_t *ev_c, size_t *len)
{
    evb_event_t *ev = (evb_event_t *)ev_c;
    char *done = atomic_load_explicit(&ev->data_json, memory_order_acquire);
    if (done) {
        if (len)
            *len = ev->data_json_len;
        return done;
    }
    const uint8_t *p = ev->msgpack, *end = p + ev->msgpack_len;
    evb_mp_item_t root, key;
    if (evb_mp_read(&p, end, &root) < 0 || root.kind != EVB_MP_MAP)
        return NULL;
    for (uint32_t i = 0; i < root.len; i++) {
        if (evb_mp_read(&p, end, &key) < 0 || key.kind != EVB_MP_STR)
            return NULL;
        if (!(key.len == 4 && memcmp(key.ptr, "data", 4) == 0)) {
            if (evb_mp_skip(&p, end, MAX_DEPTH_LIMIT) < 0)
                return NULL;
            continue;
        }
        evb_buf_t b = EVB_BUF_INIT;
        if (evb_json_write_mp(&b, &p, end, MAX_DEPTH_LIMIT) < 0) {
            evb_buf_free(&b);
            return NULL;
        }
        size_t n;
        char *str = evb_buf_steal(&b, &n);
        const char *out = s_cache(&ev->data_json, &ev->data_json_len, str, n);
        if (len)
            *len = ev->data_json_len;
        return out;
    }
    return NULL;
}

/* data.<a.b.c>: walk map keys; NULL when any step is missing. */
static const msgpack_object *s_data_path(const msgpack_object *root,
                                         const char *path)
{
    const msgpack_object *o = s_find_key(root, "data", 4);
    while (o && path && *path) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        o = s_find_key(o, path, n);
        path = dot ? dot + 1 : NULL;
    }
    return o;
}

int evb_event_data_number(const evb_event_t *ev, const char *path, double *out)
{
    msgpack_object root;
    if (s_unpack(ev, &root) < 0)
        return -1;
    const msgpack_object *o = s_data_path(&root, path);
    if (!o)
        return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)o->via.u64;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)o->via.i64;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = o->via.f64;
        return 0;
    default:
        return -1;
    }
}

char *evb_event_data_text(const evb_event_t *ev, const char *path)
{
    msgpack_object root;
    if (s_unpack(ev, &root) < 0)
        return NULL;
    const msgpack_object *o = s_data_path(&root, path);
    if (!o)
        return NULL;
    if (o->type == MSGPACK_OBJECT_STR)
        return strndup(o->via.str.ptr, o->via.str.size);
    evb_buf_t b = EVB_BUF_INIT;
    if (evb_json_write(&b, o) < 0) {
        evb_buf_free(&b);
        return NULL;
    }
    return evb_buf_steal(&b, NULL);
}
