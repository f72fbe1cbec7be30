#ifndef DIGIT_RUNS_H
#define DIGIT_RUNS_H

#include <stddef.h>
#include <stdint.h>

/// A stretch of digits joined by the separators numbers are written with
/// (space . - ( ) +): from its first digit to just after its last.
typedef struct {
    uint32_t start;
    uint32_t end;
    uint32_t digits;
    /// Dots from the first digit to where the stretch ends.
    uint32_t dots;
    /// Uppercase ASCII letters right before the first digit, or before a
    /// space before it (0, 1 or 2).
    uint32_t letters_before;
} digit_run;

typedef void (*digit_run_sink)(void *context, const digit_run *run);

/// Calls `sink` for each run in `bytes[0..<count]` (count < 4 GiB) with at
/// least `min_digits` digits, or `min_dots` dots, or two uppercase letters
/// before it; in order of position. Sixteen bytes at a time: a block of 64
/// without a digit costs a few instructions.
void digit_runs(const uint8_t *bytes, size_t count, uint32_t min_digits, uint32_t min_dots, digit_run_sink sink, void *context);

#endif
