#ifndef CLIBFUZZERDRIVER_H
#define CLIBFUZZERDRIVER_H

#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver, for programs that have their own `main` (llvm.org/docs/LibFuzzer.html,
/// "Using libFuzzer as a library"). SwiftPM links executables with `main` renamed to
/// `<module>_main`, so libFuzzer's own `main` never runs: ours calls this instead.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
