/* A stand-in for Windows' bcryptprimitives.dll, for running the Windows
 * build under Debian's wine 8, which lacks it. Rust's std imports
 * ProcessPrng from it; this one forwards to advapi32's RtlGenRandom
 * (SystemFunction036). Test harness only: real Windows has the DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x40000000 ? 0x40000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
