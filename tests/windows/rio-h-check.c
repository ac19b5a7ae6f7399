/*
 * rio-h-check: core/win/rio.h compiles against the system's Winsock
 * headers, and its declarations give the RIO ABI's sizes and offsets (the
 * _Static_asserts in rio.h).  Built twice by tests/windows/run.sh: as is,
 * where mingw-w64 lacks RIO and rio.h declares it; and with
 * -DRIO_H_AS_SDK, where rio.h is read a second time with everything
 * already declared under the macros the Windows SDK defines
 * (RIO_INVALID_CQ, WSAID_MULTIPLE_RIO), as with the SDK's own headers: it
 * must then declare nothing again.
 */

#include "rio.h"
#ifdef RIO_H_AS_SDK
#undef RP_WIN_RIO_H
#include "rio.h"
#endif

int
main(void)
{
    static const GUID rio = WSAID_MULTIPLE_RIO;
    RIO_EXTENSION_FUNCTION_TABLE table = { .cbSize = sizeof(table) };
    RIO_BUF buf = { RIO_INVALID_BUFFERID, 0, 0 };
    RIORESULT res = { 0, 0, 0, 0 };

    return rio.Data1 != 0x8509e081 || table.cbSize != 112
           || buf.BufferId != RIO_INVALID_BUFFERID || res.Status != 0
           || RIO_CORRUPT_CQ != 0xFFFFFFFF || RIO_MSG_COMMIT_ONLY != 8;
}
