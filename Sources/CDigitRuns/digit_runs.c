#include "digit_runs.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int is_upper(uint8_t byte) { return (uint8_t)(byte - 'A') < 26; }

/// Bit i set where p[i] is a digit.
static inline uint64_t digits64(const uint8_t *p) {
#if defined(__SSE2__)
    const __m128i flip = _mm_set1_epi8((char)0x80);
    const __m128i below = _mm_set1_epi8((char)('0' - 1 - 128)), above = _mm_set1_epi8((char)('9' + 1 - 128));
    uint64_t d = 0;
    for (int k = 0; k < 4; k++) {
        __m128i s = _mm_xor_si128(_mm_loadu_si128((const __m128i *)(p + 16 * k)), flip); // signed compare of unsigned bytes
        __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(s, below), _mm_cmplt_epi8(s, above));
        d |= (uint64_t)(uint16_t)_mm_movemask_epi8(digit) << (16 * k);
    }
    return d;
#else
    uint64_t d = 0;
    for (int i = 0; i < 64; i++) if ((uint8_t)(p[i] - '0') < 10) d |= (uint64_t)1 << i;
    return d;
#endif
}

/// Bit i set where p[i] is a separator (space . - ( ) +); `dots` where it is '.'.
static inline uint64_t separators64(const uint8_t *p, uint64_t *dots) {
#if defined(__SSE2__)
    const __m128i space = _mm_set1_epi8(' '), dot = _mm_set1_epi8('.'), dash = _mm_set1_epi8('-');
    const __m128i open = _mm_set1_epi8('('), close = _mm_set1_epi8(')'), plus = _mm_set1_epi8('+');
    uint64_t j = 0, t = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * k));
        __m128i isdot = _mm_cmpeq_epi8(v, dot);
        __m128i sep = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, space), isdot),
                                   _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, dash), _mm_cmpeq_epi8(v, open)),
                                                _mm_or_si128(_mm_cmpeq_epi8(v, close), _mm_cmpeq_epi8(v, plus))));
        j |= (uint64_t)(uint16_t)_mm_movemask_epi8(sep) << (16 * k);
        t |= (uint64_t)(uint16_t)_mm_movemask_epi8(isdot) << (16 * k);
    }
    *dots = t;
    return j;
#else
    uint64_t j = 0, t = 0;
    for (int i = 0; i < 64; i++) {
        uint8_t b = p[i];
        if (b == ' ' || b == '.' || b == '-' || b == '(' || b == ')' || b == '+') j |= (uint64_t)1 << i;
        if (b == '.') t |= (uint64_t)1 << i;
    }
    *dots = t;
    return j;
#endif
}

/// Bits [from, to) of a 64-bit mask (to <= 64).
static inline uint64_t span(unsigned from, unsigned to) {
    uint64_t high = to >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << to) - 1);
    return high & ~(((uint64_t)1 << from) - 1);
}

typedef struct {
    digit_run run;
    int open;
    uint32_t min_digits;
    uint32_t min_dots;
    digit_run_sink sink;
    void *context;
} state;

static inline void emit(state *s) {
    if (s->run.digits >= s->min_digits || s->run.dots >= s->min_dots || s->run.letters_before == 2) s->sink(s->context, &s->run);
    s->open = 0;
}

static inline void begin(state *s, const uint8_t *bytes, size_t first) {
    s->open = 1;
    s->run.start = (uint32_t)first;
    uint32_t letters = 0;
    size_t at = first;
    if (at >= 1 && bytes[at - 1] == ' ') at -= 1;
    if (at >= 1 && is_upper(bytes[at - 1])) {
        letters = 1;
        if (at >= 2 && is_upper(bytes[at - 2])) letters = 2;
    }
    s->run.letters_before = letters;
}

/// One 64-byte block at `base`: digits `d`, digits and separators `j`, dots `t`.
static inline void block(state *s, const uint8_t *bytes, size_t base, uint64_t d, uint64_t j, uint64_t t) {
    if (s->open) {
        if (j & 1) {
            uint64_t breaks = ~j;
            unsigned end = breaks ? (unsigned)__builtin_ctzll(breaks) : 64;
            uint64_t bits = span(0, end);
            uint64_t digits = d & bits;
            if (digits) {
                s->run.end = (uint32_t)(base + 64 - __builtin_clzll(digits));
                s->run.digits += (uint32_t)__builtin_popcountll(digits);
            }
            s->run.dots += (uint32_t)__builtin_popcountll(t & bits);
            d &= ~bits;
            if (end == 64) return;
        }
        emit(s);
    }
    while (d) {
        unsigned first = (unsigned)__builtin_ctzll(d);
        uint64_t breaks = ~j & ~span(0, first);
        unsigned end = breaks ? (unsigned)__builtin_ctzll(breaks) : 64;
        uint64_t bits = span(first, end);
        uint64_t digits = d & bits;
        begin(s, bytes, base + first);
        s->run.end = (uint32_t)(base + 64 - __builtin_clzll(digits));
        s->run.digits = (uint32_t)__builtin_popcountll(digits);
        s->run.dots = (uint32_t)__builtin_popcountll(t & bits);
        d &= ~bits;
        if (end == 64) return; // goes on in the next block
        emit(s);
    }
}

static inline void step(state *s, const uint8_t *bytes, size_t base, const uint8_t *block_bytes) {
    uint64_t d = digits64(block_bytes);
    if (!d && !s->open) return;
    uint64_t t;
    uint64_t j = separators64(block_bytes, &t) | d;
    block(s, bytes, base, d, j, t);
}

void digit_runs(const uint8_t *bytes, size_t count, uint32_t min_digits, uint32_t min_dots, digit_run_sink sink, void *context) {
    state s = { .open = 0, .min_digits = min_digits, .min_dots = min_dots, .sink = sink, .context = context };
    size_t base = 0;
    for (; base + 64 <= count; base += 64) step(&s, bytes, base, bytes + base);
    if (base < count) {
        uint8_t tail[64] = {0}; // NUL: neither digit nor separator
        for (size_t i = 0; base + i < count; i++) tail[i] = bytes[base + i];
        step(&s, bytes, base, tail);
    }
    if (s.open) emit(&s);
}
