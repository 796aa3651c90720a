// cmail/export.h: symbol visibility for the public API.
//
// The library is built with -fvisibility=hidden; everything an embedder may call is marked
// CMAIL_EXPORT. Thread-safety and ownership are stated in each component's header.
#pragma once

#if defined(_WIN32)
#define CMAIL_EXPORT __declspec(dllexport)
#else
#define CMAIL_EXPORT [[gnu::visibility("default")]]
#endif
