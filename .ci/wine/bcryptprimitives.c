/* Wine 8 (Debian 12's) lacks bcryptprimitives.dll, whose ProcessPrng Rust's standard
 * library calls on Windows for random bytes: this stand-in answers it with RtlGenRandom,
 * so `./dev cross` can run mtest's Windows unit tests under Wine. Built with MinGW; used
 * only in the Wine prefix under target/. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) { return RtlGenRandom(data, (ULONG)len); }
