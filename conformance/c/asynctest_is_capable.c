/* Twin of asynctest_is_capable: asynctest.c's main() runs the tests only when
 * ASYNC_is_capable() is true. */
#include "trace.h"

int main(void)
{
    T("is_capable -> %d", ASYNC_is_capable());
    return 0;
}
