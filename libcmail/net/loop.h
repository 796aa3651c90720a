// libcmail/net/loop.h: the libuv loop behind a Runtime, for the runtime layer's own components
// (resolver, outbound connections, dispatcher timers). Private: public headers never name uv.
//
// Thread-safety: the loop and its handles are used on the Runtime's loop thread only. Handles
// are freed in their uv_close callbacks, and every component closes its handles from
// Runtime::at_shutdown so that Runtime::run() returns.
#pragma once

#include <cmail/net/runtime.h>

#include <uv.h>

namespace cmail::net {

// How the runtime's own components reach the loop; the public header only names it a friend.
struct LoopAccess {
  static uv_loop_t* loop(Runtime& runtime);
};

inline uv_loop_t* loop_of(Runtime& runtime) { return LoopAccess::loop(runtime); }

}  // namespace cmail::net
