#ifndef CZEROMQ_SHIM_H
#define CZEROMQ_SHIM_H
// The one C header the Swift wrapper sees: libzmq's public API.
#include <zmq.h>
#endif
