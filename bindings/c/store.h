// bindings/c/store.h: the cmail_store handle, shared with the in-process server (server.cc),
// whose Store it lends out.
//
// Thread-safety: as store::Store (any thread).
#pragma once

#include <cmail/cmail.h>
#include <cmail/store/store.h>

#include <memory>

struct cmail_store {
  std::unique_ptr<cmail::store::Store> owned;  // null: lent by a cmail_server
  cmail::store::Store* store = nullptr;
};
