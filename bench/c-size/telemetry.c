/* azure-sdk-for-c's "telemetry only" feature set through the C API. */
#include "common.h"

int scenario(void) { return telemetry_part(); }
