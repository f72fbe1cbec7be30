#include "digit_runs.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

static inline int is_upper(uint8_t byte) { return (uint8_t)(byte - 'A') < 26; }

/// Bit i set where bytes[i] is a digit; `joins` where it is a digit or a separator.
static inline void classify64(const uint8_t *p, uint64_t *digits, uint64_t *joins) {
#if defined(__SSE2__)
    uint64_t d = 0, j = 0;
    const __m128i zero = _mm_set1_epi8('0' - 128), nine = _mm_set1_epi8('9' - 128 + 1), flip = _mm_set1_epi8((char)0x80);
    const __m128i space = _mm_set1_epi8(' '), dot = _mm_set1_epi8('.'), dash = _mm_set1_epi8('-');
    const __m128i open = _mm_set1_epi8('('), close = _mm_set1_epi8(')'), plus = _mm_set1_epi8('+');
    for (int k = 0; k < 4; k++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * k));
        __m128i s = _mm_xor_si128(v, flip); // signed compare of unsigned bytes
        __m128i isdigit = _mm_and_si128(_mm_cmpgt_epi8(s, _mm_sub_epi8(zero, _mm_set1_epi8(1))), _mm_cmplt_epi8(s, nine));
        __m128i sep = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, space), _mm_cmpeq_epi8(v, dot)),
                                   _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, dash), _mm_cmpeq_epi8(v, open)),
                                                _mm_or_si128(_mm_cmpeq_epi8(v, close), _mm_cmpeq_epi8(v, plus))));
        d |= (uint64_t)(uint16_t)_mm_movemask_epi8(isdigit) << (16 * k);
        j |= (uint64_t)(uint16_t)_mm_movemask_epi8(_mm_or_si128(isdigit, sep)) << (16 * k);
    }
    *digits = d;
    *joins = j;
#else
    uint64_t d = 0, j = 0;
    for (int i = 0; i < 64; i++) {
        uint8_t b = p[i];
        uint64_t bit = (uint64_t)1 << i;
        if ((uint8_t)(b - '0') < 10) { d |= bit; j |= bit; }
        else if (b == ' ' || b == '.' || b == '-' || b == '(' || b == ')' || b == '+') j |= bit;
    }
    *digits = d;
    *joins = j;
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
    digit_run_sink sink;
    void *context;
} state;

static inline void emit(state *s) {
    if (s->run.digits >= s->min_digits || s->run.letters_before == 2) s->sink(s->context, &s->run);
    s->open = 0;
}

static inline void begin(state *s, const uint8_t *bytes, size_t first) {
    s->open = 1;
    s->run.start = (uint32_t)first;
    s->run.digits = 0;
    uint32_t letters = 0;
    size_t at = first;
    if (at >= 1 && bytes[at - 1] == ' ') at -= 1;
    if (at >= 1 && is_upper(bytes[at - 1])) {
        letters = 1;
        if (at >= 2 && is_upper(bytes[at - 2])) letters = 2;
    }
    s->run.letters_before = letters;
}

/// One 64-byte block at `base`.
static inline void block(state *s, const uint8_t *bytes, size_t base, uint64_t d, uint64_t j) {
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
        d &= ~bits;
        if (end == 64) return; // goes on in the next block
        emit(s);
    }
}

void digit_runs(const uint8_t *bytes, size_t count, uint32_t min_digits, digit_run_sink sink, void *context) {
    state s = { .open = 0, .min_digits = min_digits, .sink = sink, .context = context };
    size_t base = 0;
    for (; base + 64 <= count; base += 64) {
        uint64_t d, j;
        classify64(bytes + base, &d, &j);
        if (!d && !s.open) continue;
        block(&s, bytes, base, d, j);
    }
    if (base < count) {
        uint8_t tail[64] = {0}; // NUL: neither digit nor separator
        for (size_t i = 0; base + i < count; i++) tail[i] = bytes[base + i];
        uint64_t d, j;
        classify64(tail, &d, &j);
        block(&s, bytes, base, d, j);
    }
    if (s.open) emit(&s);
}
